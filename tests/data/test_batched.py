"""Device-resident data with batched augmentation: the DataLoader path's order, the
torchvision path's values for given parameters, the same distributions of crop offsets, flips
and Cutout squares (chi-square against the exact distribution), determinism."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from sd_darts.data import IndexedImageDataset, load_search_data, make_loader
from sd_darts.data.batched import BatchedLoader, DeviceImages, augment_batch, augment_params
from sd_darts.data.common import crop_padding, train_transform

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
SIZE, PAD, CUTOUT = 32, crop_padding(32), 16
#: Significance of every chi-square test below.  Seeds are fixed, so a test cannot flake: a
#: p-value below this means the distributions differ.
ALPHA = 1e-4


@pytest.fixture(scope="module")
def digits():
    return load_search_data("digits", "unused", limit=300)


def test_pass_order_is_the_dataloader_order(digits):
    loader = BatchedLoader(DeviceImages.from_dataset(digits.train), 16, seed=3, drop_last=False)
    for epoch, pass_index in ((0, 0), (2, 1)):
        want = [idx for _, _, idx in make_loader(digits.train, 16, True, seed=3, epoch=epoch, pass_index=pass_index)]
        got = [idx for _, _, idx in loader.batches(epoch, pass_index)]
        assert len(got) == len(want) == len(loader)
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    dropped = BatchedLoader(DeviceImages.from_dataset(digits.train), 16, seed=3)
    assert len(dropped) == len(digits.train) // 16
    assert all(x.shape[0] == 16 for x, _, _ in dropped.batches(0))


def test_without_augmentation_it_is_the_eval_transform(digits):
    loader = BatchedLoader(DeviceImages.from_dataset(digits.valid_plain), 8, seed=0, augment=False, shuffle=False)
    x, y, idx = next(loader.batches(0))
    want = torch.stack([digits.valid_plain[k][0] for k in range(8)])
    assert torch.equal(x, want)
    assert torch.equal(y, torch.tensor([digits.valid_plain[k][1] for k in range(8)]))


def test_batched_augmentation_equals_torchvision_for_the_same_parameters():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, SIZE, SIZE), dtype=torch.uint8, generator=g)
    params = augment_params(64, SIZE, PAD, CUTOUT, g)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    got = augment_batch(images, mean, std, params, PAD, CUTOUT)
    for k in range(64):
        top, left = params["offset"][k].tolist()
        img = TF.crop(TF.pad(images[k], [PAD]), top, left, SIZE, SIZE)
        if params["flip"][k]:
            img = TF.horizontal_flip(img)
        img = TF.normalize(TF.to_dtype(img, torch.float32, scale=True), list(MEAN), list(STD))
        cy, cx = params["centre"][k].tolist()
        half = CUTOUT // 2
        img[..., max(0, cy - half) : min(SIZE, cy + half), max(0, cx - half) : min(SIZE, cx + half)] = 0
        assert torch.equal(got[k], img), k


def test_augmentation_is_a_function_of_seed_epoch_and_pass():
    g = torch.Generator().manual_seed(1)
    data = DeviceImages(
        torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=g),
        torch.arange(40),
        torch.arange(40),
        MEAN,
        STD,
    )

    def first(loader, epoch, pass_index=0):
        return next(loader.batches(epoch, pass_index))[0]

    a, b = BatchedLoader(data, 8, seed=5, cutout=4), BatchedLoader(data, 8, seed=5, cutout=4)
    assert torch.equal(first(a, 3), first(b, 3))
    assert not torch.equal(first(a, 3), first(a, 4))
    assert not torch.equal(first(a, 3), first(a, 3, 1))
    assert not torch.equal(first(a, 3), first(BatchedLoader(data, 8, seed=6, cutout=4), 3))
    stream = a.stream(2)
    seen = torch.cat([next(stream)[2] for _ in range(2 * len(a))])
    assert torch.equal(seen[:40].sort().values, torch.arange(40))  # pass 0 sees every sample once


# ---- distributions ------------------------------------------------------------------------------


def _coordinate_images(n: int) -> torch.Tensor:
    """Channel 0 = row + 1, channel 1 = column + 1 (0 is the padding), channel 2 = 200."""
    ar = torch.arange(1, SIZE + 1, dtype=torch.uint8)
    img = torch.stack(
        [
            ar.view(SIZE, 1).expand(SIZE, SIZE),
            ar.view(1, SIZE).expand(SIZE, SIZE),
            torch.full((SIZE, SIZE), 200, dtype=torch.uint8),
        ]
    )
    return img.unsqueeze(0).expand(n, 3, SIZE, SIZE).contiguous()


def _recover(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Crop offsets, flips and Cutout centres of augmented coordinate images."""
    raw = torch.round((x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)) * 255)
    out = {}
    zero = (x == 0).all(1)  # the Cutout square (padding and image pixels are never exactly 0)
    has_cut = zero.flatten(1).any(1).long()
    rows, cols = zero.any(2), zero.any(1)
    y1, y2 = rows.float().argmax(1), SIZE - rows.flip(1).float().argmax(1)
    x1, x2 = cols.float().argmax(1), SIZE - cols.flip(1).float().argmax(1)
    assert torch.equal(zero.flatten(1).sum(1), (y2 - y1) * (x2 - x1) * has_cut)  # a filled rectangle
    half = CUTOUT // 2
    out["cy"] = torch.where(y1 > 0, y1 + half, y2 - half)  # unique: the square is 2·half wide
    out["cx"] = torch.where(x1 > 0, x1 + half, x2 - half)
    # Crop and flip from two pixels that are always inside the image (offsets move them by <= PAD)
    a, b = raw[:, :, SIZE // 2, SIZE // 2], raw[:, :, SIZE // 2, SIZE // 2 - 1]
    flip = a[:, 1] < b[:, 1]
    out["flip"] = flip
    out["top"] = a[:, 0] - 1 - SIZE // 2 + PAD
    src_col = a[:, 1] - 1
    out["left"] = torch.where(flip, src_col - (SIZE - 1 - SIZE // 2), src_col - SIZE // 2) + PAD
    return out


def _chi_square_p(counts: torch.Tensor, probs: torch.Tensor) -> float:
    counts, probs = counts.double().flatten(), probs.double().flatten()
    expected = counts.sum() * probs
    stat = ((counts - expected) ** 2 / expected).sum()
    return float(torch.special.gammaincc(torch.tensor((counts.numel() - 1) / 2.0), stat / 2))


def _samples(path: str, n: int, cutout: int) -> dict[str, torch.Tensor]:
    images = _coordinate_images(n)
    if path == "torchvision":
        torch.manual_seed(123)
        dataset = IndexedImageDataset(images, torch.zeros(n), torch.arange(n), train_transform(SIZE, MEAN, STD, cutout))
        x = torch.stack([dataset[k][0] for k in range(n)])
    else:
        loader = BatchedLoader(
            DeviceImages(images, torch.zeros(n), torch.arange(n), MEAN, STD), n, seed=7, cutout=cutout
        )
        x = next(loader.batches(0))[0]
    return _recover(x)


@pytest.mark.parametrize("path", ["torchvision", "batched"])
def test_crop_flip_and_cutout_have_the_exact_distributions(path):
    n = 6000
    s = _samples(path, n, 0)  # crop and flip, read where no Cutout square can hide them
    offsets = 2 * PAD + 1
    uniform = torch.full((offsets,), 1.0 / offsets)
    assert _chi_square_p(torch.bincount(s["top"].long(), minlength=offsets), uniform) > ALPHA
    assert _chi_square_p(torch.bincount(s["left"].long(), minlength=offsets), uniform) > ALPHA
    joint = torch.bincount((s["top"] * offsets + s["left"]).long(), minlength=offsets**2)
    assert _chi_square_p(joint, torch.full((offsets**2,), 1.0 / offsets**2)) > ALPHA
    assert _chi_square_p(torch.bincount(s["flip"].long(), minlength=2), torch.tensor([0.5, 0.5])) > ALPHA
    flip_by_top = torch.stack([torch.bincount(s["flip"][s["top"] == t].long(), minlength=2) for t in range(offsets)])
    assert _chi_square_p(flip_by_top, torch.full((offsets, 2), 1.0 / (2 * offsets))) > ALPHA
    s = _samples(path, n, CUTOUT)
    for key in ("cy", "cx"):
        assert _chi_square_p(torch.bincount(s[key].long(), minlength=SIZE), torch.full((SIZE,), 1.0 / SIZE)) > ALPHA
    blocks = torch.bincount((s["cy"] // 8 * 4 + s["cx"] // 8).long(), minlength=16)  # independence, coarsely
    assert _chi_square_p(blocks, torch.full((16,), 1 / 16)) > ALPHA


def test_the_two_paths_agree_with_each_other():
    """Two-sample check on the joint (top, left, flip) cells, grouped in 18 cells."""
    n = 6000
    a, b = _samples("torchvision", n, 0), _samples("batched", n, 0)
    cells = [torch.bincount((s["top"] // 3 * 6 + s["left"] // 3 * 2 + s["flip"]).long(), minlength=18) for s in (a, b)]
    table = torch.stack(cells).double()
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / table.sum()
    stat = ((table - expected) ** 2 / expected).sum()
    p = float(torch.special.gammaincc(torch.tensor((18 - 1) / 2.0), stat / 2))
    assert p > ALPHA
