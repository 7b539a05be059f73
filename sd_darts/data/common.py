"""Datasets, transforms and loaders shared by every image dataset of the package.

Items are ``(image, label, index)`` (the teacher cache is indexed by ``index``); loader order and
augmentation depend only on ``(seed, epoch, pass, index)``, so a resumed run sees the same batches
whatever the workers.  Why and how: docs/data.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

from ..errors import UserError


def crop_padding(image_size: int) -> int:
    """Zero padding of the random crop: 4 pixels at 32x32 (DARTS), scaled as size/8 otherwise."""
    return max(1, int(image_size) // 8)


class Cutout:
    """Cutout (DeVries & Taylor 2017) as in the DARTS training code: zero a
    ``length`` x ``length`` square whose centre is drawn uniformly over the image, clipped at
    the borders.  Applied to the float image AFTER normalisation (so the square is 0 in
    normalised units, i.e. the dataset mean).  Draws from torch's RNG (DARTS used numpy's)."""

    def __init__(self, length: int):
        self.length = int(length)
        if self.length < 0:
            raise UserError(f"cutout length must be >= 0, got {length}")

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.length == 0:
            return img
        h, w = img.shape[-2:]
        y = int(torch.randint(0, h, ()))
        x = int(torch.randint(0, w, ()))
        half = self.length // 2
        y1, y2 = max(0, y - half), min(h, y + half)
        x1, x2 = max(0, x - half), min(w, x + half)
        img = img.clone()
        img[..., y1:y2, x1:x2] = 0
        return img

    def __repr__(self) -> str:
        return f"Cutout(length={self.length})"


def train_transform(image_size: int, mean: Sequence[float], std: Sequence[float], cutout_length: int = 0) -> Callable:
    """DARTS training augmentation on uint8 tensors: RandomCrop(size, padding=4) with zero
    padding, RandomHorizontalFlip, to float in [0, 1], Normalize(mean, std), then Cutout."""
    steps: list[Callable] = [
        v2.RandomCrop(image_size, padding=crop_padding(image_size)),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
    ]
    if cutout_length > 0:
        steps.append(Cutout(cutout_length))
    return v2.Compose(steps)


def eval_transform(mean: Sequence[float], std: Sequence[float]) -> Callable:
    """Evaluation transform: to float in [0, 1] and Normalize(mean, std) only."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


class IndexedImageDataset(Dataset):
    """The images ``images_uint8[indices]`` with their labels; item ``i`` is
    ``(transform(image), label, index)`` where ``index = indices[i]`` is the position in the
    full set held by ``images_uint8`` (for the search: the full training set)."""

    def __init__(
        self,
        images_uint8: torch.Tensor,
        labels: torch.Tensor,
        indices: Sequence[int] | torch.Tensor,
        transform: Callable | None,
    ):
        if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
            raise ValueError(
                f"images must be a uint8 tensor (N, C, H, W), got {images_uint8.dtype} {tuple(images_uint8.shape)}"
            )
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (images_uint8.shape[0],):
            raise ValueError(f"labels shape {tuple(labels.shape)} does not match {images_uint8.shape[0]} images")
        indices = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= images_uint8.shape[0]):
            raise ValueError("dataset indices out of range")
        self.images = images_uint8
        self.labels = labels
        self.indices = indices
        self.transform = transform

    def __len__(self) -> int:
        return int(self.indices.numel())

    def __getitem__(self, i: int) -> tuple[Any, int, int]:
        j = int(self.indices[i])
        img = self.images[j]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[j]), j

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset_labels(self) -> torch.Tensor:
        """Labels of this subset, in item order."""
        return self.labels[self.indices]


def epoch_seed(seed: int, epoch: int, pass_index: int = 0) -> int:
    """A well-mixed 63-bit seed that depends only on (seed, epoch, pass_index)."""
    for name, v in (("seed", seed), ("epoch", epoch), ("pass_index", pass_index)):
        if int(v) < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    state = np.random.SeedSequence([int(seed), int(epoch), int(pass_index)]).generate_state(1, np.uint64)
    return int(state[0]) & ((1 << 63) - 1)


class SeededItems(Dataset):
    """``dataset[i]`` computed with torch's RNG seeded from ``(base_seed, i)`` and restored after.

    Random transforms (crop, flip, cutout, ImageNet's resized crop and colour jitter) draw from
    torch's global RNG; seeding it per item makes an epoch's augmentation a function of the
    epoch seed alone, the same in the main process and in any number of worker processes.
    """

    def __init__(self, dataset: Dataset, base_seed: int):
        self.dataset = dataset
        self.base_seed = int(base_seed)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        # Only the CPU generator is used by the transforms; saving and restoring it directly is
        # ~40x cheaper than torch.random.fork_rng + torch.manual_seed (which also seeds CUDA).
        gen = torch.default_generator
        state = gen.get_state()
        gen.manual_seed((self.base_seed + 0x9E3779B97F4A7C15 * (int(i) + 1)) & ((1 << 63) - 1))
        try:
            return self.dataset[i]
        finally:
            gen.set_state(state)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    epoch: int,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    sampler: Sampler | None = None,
    pass_index: int = 0,
) -> DataLoader:
    """A DataLoader whose order is driven by a ``torch.Generator`` seeded from
    ``(seed, epoch, pass_index)`` only, so an epoch's order never depends on the global RNG.

    Each item's augmentation is seeded from ``(seed, epoch, pass_index, item)``
    (:class:`SeededItems`), so it does not depend on ``num_workers`` or on the global RNG.  With a ``sampler`` (e.g. a
    ``DistributedSampler``) ``shuffle`` is ignored and ``sampler.set_epoch(epoch)`` is called.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    base = epoch_seed(seed, epoch, pass_index)
    generator = torch.Generator()
    generator.manual_seed(base)
    if sampler is not None:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(int(epoch))
        shuffle = False
    return DataLoader(
        SeededItems(dataset, base),
        batch_size=int(batch_size),
        shuffle=bool(shuffle),
        sampler=sampler,
        num_workers=int(num_workers),
        drop_last=bool(drop_last),
        pin_memory=bool(pin_memory),
        generator=generator,
        persistent_workers=False,
    )


class PersistentIterator:
    """One long-lived iterator over the validation (alpha) half: every sample once per pass.

    ``next(it)`` starts the next pass when one is exhausted; ``reset(epoch)`` starts pass 0 of an
    epoch.  ``make_loader_fn(epoch, pass_index)`` (or ``(epoch)``) returns a pass's batches; unlike
    DARTS's ``next(iter(valid_queue))``, nothing is drawn with replacement (docs/data.md).
    """

    def __init__(self, make_loader_fn: Callable[..., Iterable], epoch: int = 0):
        self._fn = make_loader_fn
        self._two_args = _accepts_two_args(make_loader_fn)
        self.epoch = int(epoch)
        self.pass_index = 0
        self.batches_in_pass = 0
        self._it: Iterator | None = None

    def reset(self, epoch: int) -> None:
        """Start a fresh pass (pass 0) for ``epoch``; the loader is created lazily."""
        self.epoch = int(epoch)
        self.pass_index = 0
        self.batches_in_pass = 0
        self._it = None

    def _start(self) -> None:
        loader = self._fn(self.epoch, self.pass_index) if self._two_args else self._fn(self.epoch)
        self._it = iter(loader)
        self.batches_in_pass = 0

    def __iter__(self) -> PersistentIterator:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._start()
        try:
            batch = next(self._it)
        except StopIteration:
            self.pass_index += 1
            self._start()
            try:
                batch = next(self._it)
            except StopIteration:
                raise UserError(
                    "the validation loader yields no batch (is the alpha half smaller than one batch "
                    "with drop_last?); lower the batch size or raise the data portion"
                ) from None
        self.batches_in_pass += 1
        return batch

    next = __next__


def _accepts_two_args(fn: Callable) -> bool:
    try:
        inspect.signature(fn).bind(0, 0)
    except TypeError:
        return False
    except ValueError:  # no signature available (some builtins): assume the documented form
        return True
    return True
