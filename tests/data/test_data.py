"""Data package: digits and CIFAR-10 search splits, CIFAR-10 preparation (md5, atomic
extraction, one-line errors), seeded loaders, persistent validation iterator, cutout."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import ARCHIVE, FOLDER, make_tar, md5, patch_md5_tables, write_fake_cifar
from torchvision.datasets import CIFAR10

import sd_darts.data.cifar as cifar
from sd_darts.data import (
    Cutout,
    IndexedImageDataset,
    PersistentIterator,
    eval_transform,
    load_eval_data,
    load_search_data,
    make_loader,
    prepare_cifar10,
    train_transform,
)
from sd_darts.data.cifar import CIFAR10_MEAN, CIFAR10_STD
from sd_darts.data.digits import NUM_TRAIN, digits_mean_std, load_digits_images
from sd_darts.errors import UserError


def indices_of(ds) -> list[int]:
    return [int(ds[i][2]) for i in range(len(ds))]


# ---------------------------------------------------------------------------- digits
@pytest.fixture(scope="module")
def digits():
    return load_search_data("digits", "unused")


def test_digits_search_split_sizes_disjoint_and_indices(digits):
    assert (digits.num_samples, digits.num_classes, digits.image_size, digits.channels) == (1500, 10, 32, 3)
    assert (len(digits.train), len(digits.valid)) == (750, 750)
    tr, va = indices_of(digits.train), indices_of(digits.valid)
    assert tr == list(range(0, 750)) and va == list(range(750, 1500))
    from sklearn.datasets import load_digits

    target = load_digits().target
    for ds in (digits.train, digits.valid):
        for i in (0, 1, 17, len(ds) - 1):
            img, label, idx = ds[i]
            assert img.shape == (3, 32, 32) and img.dtype == torch.float32
            assert isinstance(label, int) and label == int(target[idx])


def test_digits_portion_is_configurable():
    data = load_search_data("digits", "unused", portion=0.8)
    assert (len(data.train), len(data.valid)) == (1200, 300)
    assert indices_of(data.valid)[0] == 1200


def test_digits_images_are_the_bundled_ones_on_a_0_255_scale():
    from sklearn.datasets import load_digits

    images, labels = load_digits_images(8)  # same size: the bilinear resize is the identity
    ref = np.rint(load_digits().images * 255.0 / 16.0)
    assert images.dtype == torch.uint8 and images.shape == (1797, 3, 8, 8)
    assert np.array_equal(images[:, 0].numpy(), ref)
    assert torch.equal(images[:, 0], images[:, 2])
    big, _ = load_digits_images(32)
    assert big.shape == (1797, 3, 32, 32) and int(big.max()) > 200


def test_digits_normalisation_is_zero_mean_unit_std_on_the_training_images():
    images, _ = load_digits_images(32)
    mean, std = digits_mean_std(32)
    x = torch.stack([eval_transform(mean, std)(img) for img in images[:NUM_TRAIN]])
    assert abs(x.mean().item()) < 1e-3
    assert abs(x.std().item() - 1.0) < 1e-3
    # the search's training augmentation keeps it roughly centred too (zero padding shifts it a bit)
    data = load_search_data("digits", "unused")
    xa = torch.stack([data.train[i][0] for i in range(0, 750, 5)])
    assert abs(xa.mean().item()) < 0.25 and 0.7 < xa.std().item() < 1.3


def test_digits_can_be_resized_for_fast_tests():
    data = load_search_data("digits", "unused", image_size=16)
    assert data.image_size == 16 and data.train[0][0].shape == (3, 16, 16)


def test_digits_eval_split():
    ev = load_eval_data("digits", "unused", cutout_length=8)
    assert (len(ev.train), len(ev.test), ev.num_classes, ev.image_size) == (1500, 297, 10, 32)
    images, labels = load_digits_images(32)
    mean, std = digits_mean_std(32)
    img, label, idx = ev.test[5]
    assert idx == 5 and label == int(labels[NUM_TRAIN + 5])
    assert torch.equal(img, eval_transform(mean, std)(images[NUM_TRAIN + 5]))


def test_training_augmentation_is_a_zero_padded_random_crop_and_a_random_flip():
    """Every augmented image is a 32x32 window of the 4-pixel zero-padded image, flipped
    horizontally about half of the time (DARTS: RandomCrop(32, padding=4), flip)."""
    images, _ = load_digits_images(32)
    img = images[3]
    tf = train_transform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # identity normalisation: out = img / 255
    padded = torch.nn.functional.pad(img.float() / 255, (4, 4, 4, 4))
    windows = {(y, x): padded[:, y : y + 32, x : x + 32] for y in range(9) for x in range(9)}
    torch.manual_seed(0)
    flipped = shifted = 0
    for _ in range(40):
        out = tf(img)
        plain = [k for k, w in windows.items() if torch.allclose(out, w)]
        flip = [k for k, w in windows.items() if torch.allclose(out, w.flip(-1))]
        assert plain or flip
        flipped += bool(flip) and not plain
        shifted += (plain or flip)[0] != (4, 4)
    assert 8 <= flipped <= 32
    assert shifted >= 30


def test_unknown_dataset_and_bad_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown dataset"):
        load_search_data("mnist", tmp_path)
    with pytest.raises(UserError, match="unknown dataset"):
        load_eval_data("svhn", tmp_path)
    with pytest.raises(UserError, match="portion"):
        load_search_data("digits", tmp_path, portion=1.0)
    with pytest.raises(UserError, match="image_size"):
        load_search_data("cifar10", tmp_path, image_size=16)


# ---------------------------------------------------------------------------- CIFAR-10 files
@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """A source folder with the extracted files, its tar.gz, and patched md5 tables."""
    src = tmp_path / "src"
    expected = write_fake_cifar(src / FOLDER)
    archive = tmp_path / "archive" / ARCHIVE
    archive.parent.mkdir()
    make_tar(src, archive)
    patch_md5_tables(monkeypatch, src / FOLDER, archive)
    return {"src": src, "archive": archive, **expected}


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name not in (ARCHIVE,))


def test_official_archive_md5_is_torchvisions():
    assert cifar.OFFICIAL_ARCHIVE_MD5 == "c58f30108f718f92721af3b95e74349a"
    # the module reads the table at call time; the unpatched table is the official one
    assert CIFAR10.tgz_md5 == cifar.OFFICIAL_ARCHIVE_MD5


def test_cifar_from_extracted_folder_gives_the_search_split_in_file_order(fake_cifar, tmp_path, monkeypatch):
    root = fake_cifar["src"]
    assert prepare_cifar10(root) == root / FOLDER
    data = load_search_data("cifar10", root)
    assert (data.num_samples, data.num_classes, data.image_size, data.channels) == (20, 10, 32, 3)
    assert indices_of(data.train) == list(range(0, 10)) and indices_of(data.valid) == list(range(10, 20))
    # the uint8 store is the files' pixels in file order, (N, 3, 32, 32) from R|G|B planes
    assert data.train.images.dtype == torch.uint8
    assert torch.equal(data.train.images, fake_cifar["train"])
    for ds in (data.train, data.valid):
        for i in range(len(ds)):
            img, label, idx = ds[i]
            assert img.shape == (3, 32, 32) and img.dtype == torch.float32
            assert label == fake_cifar["train_labels"][idx]


def test_cifar_eval_data_is_normalised_with_the_darts_constants(fake_cifar):
    root = fake_cifar["src"]
    ev = load_eval_data("cifar10", root, cutout_length=16)
    assert (len(ev.train), len(ev.test), ev.num_classes) == (20, 6, 10)
    mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(3, 1, 1)
    for i in range(6):
        img, label, idx = ev.test[i]
        assert idx == i and label == fake_cifar["test_labels"][i]
        torch.testing.assert_close(img, (fake_cifar["test"][i].float() / 255 - mean) / std)


def test_cifar_from_the_archive_alone_is_extracted_atomically(fake_cifar, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / ARCHIVE).write_bytes(fake_cifar["archive"].read_bytes())
    folder = prepare_cifar10(root)
    assert folder == root / FOLDER
    assert leftovers(root) == [FOLDER]  # no temporary extraction folder left behind
    data = load_search_data("cifar10", root, portion=0.25)
    assert (len(data.train), len(data.valid)) == (5, 15)
    assert torch.equal(data.valid.images, fake_cifar["train"])
    # second call: the extracted folder is used as is
    assert prepare_cifar10(root) == folder


def test_missing_cifar_is_a_one_line_user_error_naming_folder_and_file(tmp_path):
    root = tmp_path / "nothing-here"
    with pytest.raises(UserError) as err:
        load_search_data("cifar10", root)
    msg = str(err.value)
    assert "\n" not in msg
    assert ARCHIVE in msg and str(root) in msg and FOLDER in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg and "--download" in msg
    assert not root.exists()


def test_corrupted_archive_is_refused_and_leaves_no_folder(fake_cifar, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    blob = bytearray(fake_cifar["archive"].read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (root / ARCHIVE).write_bytes(bytes(blob))
    with pytest.raises(UserError, match="md5") as err:
        prepare_cifar10(root)
    assert "\n" not in str(err.value) and ARCHIVE in str(err.value)
    assert leftovers(root) == []


def test_archive_with_bad_contents_leaves_no_half_extracted_folder(fake_cifar, tmp_path, monkeypatch):
    """The archive's md5 matches but a file inside does not: extraction happens in a
    temporary folder, which is removed; cifar-10-batches-py never appears."""
    src = tmp_path / "bad-src"
    write_fake_cifar(src / FOLDER, seed=1)  # other pixels than the md5 tables expect
    root = tmp_path / "data"
    root.mkdir()
    make_tar(src, root / ARCHIVE)
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(root / ARCHIVE))
    with pytest.raises(UserError, match="data_batch_1 fails its md5 check"):
        prepare_cifar10(root)
    assert leftovers(root) == []


def test_corrupted_extracted_folder_is_reported_not_deleted(fake_cifar):
    root = fake_cifar["src"]
    victim = root / FOLDER / "data_batch_3"
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(UserError, match="data_batch_3 fails its md5 check") as err:
        load_search_data("cifar10", root)
    assert "\n" not in str(err.value)
    assert victim.exists()


def test_download_failure_is_a_one_line_user_error(fake_cifar, tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(url, root, filename=None, md5=None, **kw):
        Path(root, filename).write_bytes(b"partial")
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tvu, "download_url", offline)
    root = tmp_path / "data" / "cifar10"
    with pytest.raises(UserError, match="could not download") as err:
        prepare_cifar10(root, download=True)
    assert "\n" not in str(err.value) and ARCHIVE in str(err.value)
    assert not (tmp_path / "data").exists()  # no partial download, no empty data folders left
    existing = tmp_path / "mine"
    existing.mkdir()
    with pytest.raises(UserError, match="could not download"):
        prepare_cifar10(existing, download=True)
    assert existing.is_dir() and leftovers(existing) == []  # a folder the user made stays


def test_download_then_extract(fake_cifar, tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    calls = []

    def fake_download(url, root, filename=None, md5=None, **kw):
        calls.append(url)
        Path(root, filename).write_bytes(fake_cifar["archive"].read_bytes())

    monkeypatch.setattr(tvu, "download_url", fake_download)
    root = tmp_path / "data"
    data = load_search_data("cifar10", root, download=True)
    assert calls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert sorted(p.name for p in root.iterdir()) == [FOLDER, ARCHIVE]
    assert data.num_samples == 20


# ---------------------------------------------------------------------------- loaders
def tiny_dataset(n: int) -> IndexedImageDataset:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    return IndexedImageDataset(images, torch.arange(n) % 10, torch.arange(n), None)


def loader_order(ds, seed, epoch, **kw) -> list[int]:
    return torch.cat([b[2] for b in make_loader(ds, 7, True, seed, epoch, **kw)]).tolist()


def test_make_loader_order_depends_only_on_seed_and_epoch():
    ds = tiny_dataset(50)
    torch.manual_seed(1)
    a = loader_order(ds, 3, 5)
    torch.manual_seed(999)
    torch.rand(1000)  # global RNG state differs
    b = loader_order(ds, 3, 5)
    assert a == b and sorted(a) == list(range(50))
    assert loader_order(ds, 3, 6) != a
    assert loader_order(ds, 4, 5) != a
    assert loader_order(ds, 3, 5, pass_index=1) != a
    # no shuffling: file order
    assert torch.cat([b[2] for b in make_loader(ds, 7, False, 3, 5)]).tolist() == list(range(50))
    batch = next(iter(make_loader(ds, 7, False, 0, 0)))
    assert batch[1].dtype == torch.int64 and batch[2].dtype == torch.int64


def test_make_loader_with_workers_is_reproducible_too():
    ds = IndexedImageDataset(
        torch.randint(0, 256, (24, 3, 8, 8), dtype=torch.uint8),
        torch.zeros(24),
        torch.arange(24),
        train_transform(8, (0.5,) * 3, (0.25,) * 3),
    )
    runs = []
    for _ in range(2):
        runs.append(torch.cat([b[0] for b in make_loader(ds, 6, True, 0, 2, num_workers=2)]))
    assert torch.equal(runs[0], runs[1])


def test_persistent_iterator_sees_every_validation_sample_once_per_pass():
    ds = tiny_dataset(45)  # 7 batches of 7, the last one of 3
    made = []

    def fn(epoch, pass_index):
        made.append((epoch, pass_index))
        return make_loader(ds, 7, True, 0, epoch, pass_index=pass_index)

    it = PersistentIterator(fn)
    it.reset(3)
    passes = []
    for _ in range(3):
        seen = [i for _ in range(7) for i in next(it)[2].tolist()]
        passes.append(seen)
        assert sorted(seen) == list(range(45))
    assert made == [(3, 0), (3, 1), (3, 2)]
    assert passes[0] != passes[1]
    # a reset in the middle of a pass starts a fresh pass of the new epoch
    next(it)
    it.reset(4)
    seen = [i for _ in range(7) for i in next(it)[2].tolist()]
    assert sorted(seen) == list(range(45)) and made[-1] == (4, 0)
    # and it equals a fresh loader of that epoch: the order depends only on (seed, epoch)
    assert seen == loader_order_batches(ds, 0, 4)


def loader_order_batches(ds, seed, epoch):
    return torch.cat([b[2] for b in make_loader(ds, 7, True, seed, epoch)]).tolist()


def test_persistent_iterator_accepts_a_one_argument_factory_and_refuses_empty_loaders():
    ds = tiny_dataset(10)
    it = PersistentIterator(lambda e: make_loader(ds, 4, True, 0, e))
    it.reset(0)
    seen = [i for _ in range(6) for i in next(it)[2].tolist()]
    assert sorted(seen) == sorted(list(range(10)) * 2)
    empty = PersistentIterator(lambda e, p: make_loader(ds, 20, True, 0, e, drop_last=True))
    with pytest.raises(UserError, match="no batch"):
        next(empty)


# ---------------------------------------------------------------------------- cutout
def test_cutout_zeroes_one_clipped_square():
    img = torch.full((3, 32, 32), 1.5)
    torch.manual_seed(0)
    full_squares = 0
    for _ in range(200):
        out = Cutout(16)(img)
        zero = out == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])
        rows = zero[0].any(1).nonzero().flatten()
        cols = zero[0].any(0).nonzero().flatten()
        assert len(rows) >= 8 and len(cols) >= 8  # at least half the side survives clipping
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert h <= 16 and w <= 16 and int(zero[0].sum()) == h * w  # one rectangle
        assert torch.equal(out[~zero], img[~zero])
        full_squares += h == 16 and w == 16
    assert full_squares > 50  # interior centres give the full 16x16 square
    assert torch.equal(img, torch.full((3, 32, 32), 1.5))  # input untouched
    assert Cutout(0)(img) is img


def test_cutout_is_applied_after_normalisation():
    """The cut square is exactly 0 in normalised units; nothing else is (a constant uint8
    image and the zero padding both normalise to non-zero values)."""
    mean, std = CIFAR10_MEAN, CIFAR10_STD
    tf = train_transform(32, mean, std, cutout_length=16)
    torch.manual_seed(1)
    img = torch.full((3, 32, 32), 200, dtype=torch.uint8)
    for _ in range(20):
        out = tf(img)
        zero = out == 0
        assert 64 <= int(zero[0].sum()) <= 256 and torch.equal(zero[0], zero[1])
    assert not (train_transform(32, mean, std)(img) == 0).any()
    with pytest.raises(UserError):
        Cutout(-1)
