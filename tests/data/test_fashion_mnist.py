"""Fashion-MNIST: preparing the idx files (Debian's .gz or plain), their checks, and the loader
against torchvision's ``FashionMNIST`` item by item on the real files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sd_darts.cli import main
from sd_darts.data import fashion_mnist as fm
from sd_darts.data import load_eval_data, load_search_data
from sd_darts.errors import UserError
from sd_darts.experiment import schema

DEBIAN = Path(fm.DEBIAN_DIR)
INSTALLED = all((DEBIAN / f"{name}.gz").is_file() for name in fm.SHA256)
NOT_INSTALLED = f"Fashion-MNIST is not installed in {fm.DEBIAN_DIR} (apt-get install dataset-fashion-mnist)"
real = pytest.mark.skipif(not INSTALLED, reason=NOT_INSTALLED)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    if not INSTALLED:
        pytest.skip(NOT_INSTALLED)
    root = tmp_path_factory.mktemp("fmnist")
    fm.prepare_fashion_mnist(root)
    return root


def test_params_pin_the_checksums_the_loader_checks():
    assert tuple(fm.SHA256.values()) == schema.FASHION_MNIST_SHA256 == tuple(schema.DataParams().fashion_mnist_sha256)
    assert schema.DataParams().fashion_mnist_source == fm.DEBIAN_DIR


@real
def test_loader_equals_torchvision_item_by_item(prepared):
    from torchvision.datasets import FashionMNIST

    for train, count in ((True, fm.NUM_TRAIN), (False, fm.NUM_TEST)):
        images, labels = fm.load_fashion_mnist_raw(prepared, train=train)
        tv = FashionMNIST(str(prepared), train=train, download=False)
        assert len(tv) == count == images.shape[0] == labels.shape[0]
        for i in [*range(200), *range(count - 100, count)]:
            image, label = tv[i]
            assert np.array_equal(np.asarray(image), images[i].numpy()), i
            assert label == int(labels[i]), i
        assert torch.equal(tv.targets, labels)


@real
def test_networks_read_the_originals_padded_to_32_on_three_channels(prepared):
    raw, _ = fm.load_fashion_mnist_raw(prepared, train=False)
    images, _ = fm.load_fashion_mnist(prepared, train=False)
    assert images.shape == (fm.NUM_TEST, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images[:, 1, 2:30, 2:30], raw) and torch.equal(images[:, 0], images[:, 2])
    border = images.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.sum()) == 0
    search = load_search_data("fashion-mnist", prepared, limit=300)
    assert (search.num_samples, len(search.train), len(search.valid), search.num_classes) == (300, 150, 150, 10)
    assert search.train[0][0].shape == (3, 32, 32) and search.valid[0][2] == 150
    evaluation = load_eval_data("fashion-mnist", prepared, cutout_length=16)
    assert (len(evaluation.train), len(evaluation.test)) == (fm.NUM_TRAIN, fm.NUM_TEST)
    x = torch.stack([evaluation.test[i][0] for i in range(64)])
    mean = (raw[:64].double() / 255 - fm.MEAN[0]) / fm.STD[0]
    assert torch.allclose(x[:, 0, 2:30, 2:30].double(), mean, atol=1e-6)


@real
def test_image_size_28_reads_the_originals_unpadded(prepared):
    raw, labels = fm.load_fashion_mnist_raw(prepared, train=False)
    images, same = fm.load_fashion_mnist(prepared, train=False, size=28)
    assert images.shape == (fm.NUM_TEST, 3, 28, 28) and torch.equal(same, labels)
    assert all(torch.equal(images[:, c], raw) for c in range(3))
    search = load_search_data("fashion-mnist", prepared, image_size=28, limit=40)
    assert search.image_size == 28 and search.train[0][0].shape == (3, 28, 28)
    evaluation = load_eval_data("fashion-mnist", prepared, cutout_length=8, image_size=28)
    assert evaluation.image_size == 28 and evaluation.test[0][0].shape == evaluation.train[0][0].shape == (3, 28, 28)
    with pytest.raises(UserError, match="got 30"):
        load_eval_data("fashion-mnist", prepared, image_size=30)


@pytest.mark.parametrize(
    ("dataset", "size", "problem"),
    [
        ("cifar10", 28, "cifar10 is read at 32 pixels, got 28"),
        ("fashion-mnist", 24, "fashion-mnist is read at 32 or 28 pixels, got 24"),
        ("digits", 6, "must be at least 8, got 6"),
    ],
)
def test_image_sizes_a_dataset_cannot_take_are_refused_by_both_configs(dataset, size, problem, tmp_path):
    from sd_darts.evaluation.recipes import TrainCifarConfig
    from sd_darts.search.config import SearchConfig

    for config in (SearchConfig, TrainCifarConfig):
        kwargs = {"auxiliary_weight": 0.0} if config is TrainCifarConfig else {}
        with pytest.raises(UserError, match=f"image-size: {problem}"):
            config(dataset=dataset, image_size=size, out=str(tmp_path), **kwargs).validate()


@real
def test_prepare_accepts_plain_or_gz_files_keeps_intact_ones_and_refuses_wrong_ones(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for i, name in enumerate(fm.SHA256):
        if i % 2:  # half decompressed, half as Debian ships them
            with gzip.open(DEBIAN / f"{name}.gz", "rb") as fin, open(source / name, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        else:
            shutil.copy(DEBIAN / f"{name}.gz", source / f"{name}.gz")
    raw = fm.prepare_fashion_mnist(tmp_path / "root", source)
    assert sorted(p.name for p in raw.iterdir()) == sorted(fm.SHA256)
    stamps = {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    fm.prepare_fashion_mnist(tmp_path / "root", tmp_path / "nowhere")  # all intact: the source is not read
    assert stamps == {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    # a corrupted prepared file is replaced from the source; the labels of the test set as the
    # training labels are refused, naming the file, and nothing is left under the target name
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"x")
    fm.prepare_fashion_mnist(tmp_path / "root", source)
    assert fm.load_fashion_mnist_raw(tmp_path / "root", train=False)[1].shape == (fm.NUM_TEST,)
    (source / "train-labels-idx1-ubyte").unlink()
    shutil.copy(DEBIAN / "t10k-labels-idx1-ubyte.gz", source / "train-labels-idx1-ubyte.gz")
    with pytest.raises(UserError, match="train-labels-idx1-ubyte.gz does not hold the original") as err:
        fm.prepare_fashion_mnist(tmp_path / "other", source)
    assert "apt-get install dataset-fashion-mnist" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "other" / fm.RAW / "train-labels-idx1-ubyte").exists()


def test_missing_or_unreadable_source_files_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte\(\.gz\) is missing from .*apt-get install"):
        fm.prepare_fashion_mnist(tmp_path / "root", tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz cannot be read") as err:
        fm.prepare_fashion_mnist(tmp_path / "root", tmp_path)
    assert "\n" not in str(err.value)
    assert not any((tmp_path / "root").rglob("*-ubyte"))
    with pytest.raises(UserError, match="is missing; run the data stage"):
        fm.load_fashion_mnist_raw(tmp_path / "root")


def test_checksum_gunzip_prints_the_decompressed_sha256(tmp_path, capsys):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"fashion")
    assert main(["checksum", "--gunzip", str(path)]) == 0
    import hashlib

    assert capsys.readouterr().out.split()[0] == hashlib.sha256(b"fashion").hexdigest()
    assert main(["checksum", "--gunzip", str(tmp_path)]) == 2


@real
def test_search_runs_on_fashion_mnist_through_the_cli(prepared, tmp_path):
    tiny = ["--init-channels", "4", "--layers", "3", "--batch-size", "8", "--data-root", str(prepared)]
    out = tmp_path / "search"
    argv = ["search", "--dataset", "fashion-mnist", "--epochs", "2", "--warmup-epochs", "1", "--limit-samples", "32"]
    assert main([*argv, *tiny, "--out", str(out), "--device", "cpu"]) == 0
    assert (out / "genotype.json").is_file()
    assert "fashion-mnist" in (out / "config.yaml").read_text()
    assert main([*argv, *tiny, "--image-size", "28", "--out", str(tmp_path / "at28"), "--device", "cpu"]) == 0
    assert "image_size: 28" in (tmp_path / "at28" / "config.yaml").read_text()
