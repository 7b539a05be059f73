"""Datasets of the package: CIFAR-10 (the paper's), Fashion-MNIST (the real benchmark this
package can hold offline), scikit-learn's digits (offline smoke runs and tests) and, in
:mod:`sd_darts.data.imagenet`, ImageNet folders.

The search split follows DARTS: the training images [0, portion·N) train the weights, the
images [portion·N, N) train the alphas (portion 0.5: CIFAR-10 [0, 25000) / [25000, 50000)),
both with the training augmentation.  Every item is ``(image, label, index)``, ``index`` being
the position in the full training set (the index space of the teacher cache).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ..datasets import DATASETS, IMAGE_SIZES, image_size_problem
from ..errors import UserError
from .cifar import CIFAR10_MEAN, CIFAR10_STD, load_cifar10, prepare_cifar10
from .common import (
    Cutout,
    IndexedImageDataset,
    PersistentIterator,
    epoch_seed,
    eval_transform,
    make_loader,
    train_transform,
)

__all__ = [
    "DATASETS",
    "IMAGE_SIZES",
    "image_size_problem",
    "SearchData",
    "EvalData",
    "load_search_data",
    "load_eval_data",
    "prepare_cifar10",
    "make_loader",
    "PersistentIterator",
    "IndexedImageDataset",
    "Cutout",
    "train_transform",
    "eval_transform",
    "epoch_seed",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
]


@dataclass
class SearchData:
    """The two halves of the search split."""

    train: Dataset  # weight half: training images [0, split)
    valid: Dataset  # alpha half: training images [split, num_samples)
    valid_plain: Dataset  # the alpha half without augmentation (normalised only): the final measurement
    num_classes: int
    num_samples: int  # size of the full training set = index space of the teacher cache
    image_size: int
    channels: int


@dataclass
class EvalData:
    """Training and test sets for the evaluation networks."""

    train: Dataset  # augmented (crop, flip, normalise, cutout)
    test: Dataset  # normalised only
    num_classes: int
    image_size: int
    channels: int = 3


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}")


def _check_image_size(dataset: str, image_size: int | None) -> int:
    if (problem := image_size_problem(dataset, image_size)) is not None:
        raise UserError(f"image_size: {problem}")
    return IMAGE_SIZES.get(dataset, (32,))[0] if image_size is None else int(image_size)


def _training_images(dataset: str, data_root: str | os.PathLike, image_size: int, download: bool):
    """(uint8 images, labels, mean, std, num_classes) of the full training set."""
    if dataset == "cifar10":
        images, labels, classes = load_cifar10(data_root, train=True, download=download)
        return images, labels, CIFAR10_MEAN, CIFAR10_STD, len(classes)
    if dataset == "fashion-mnist":
        from . import fashion_mnist as fm

        ((images, labels),) = _fashion_mnist(data_root, image_size, True)
        return images, labels, fm.MEAN, fm.STD, fm.NUM_CLASSES
    from .digits import NUM_CLASSES, NUM_TRAIN, digits_mean_std, load_digits_images

    images, labels = load_digits_images(image_size)
    mean, std = digits_mean_std(image_size)
    return images[:NUM_TRAIN], labels[:NUM_TRAIN], mean, std, NUM_CLASSES


def _fashion_mnist(data_root: str | os.PathLike, size: int, *train: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The sets ``train`` asks for (True: training, False: test) at ``size`` pixels, the folder prepared once."""
    from .fashion_mnist import load_fashion_mnist, prepare_fashion_mnist

    prepare_fashion_mnist(data_root)  # from Debian's folder unless the data stage prepared it
    return [load_fashion_mnist(data_root, train=t, size=size) for t in train]


def search_split(num_samples: int, portion: float) -> int:
    """First index of the alpha half: ``floor(portion · num_samples)`` (DARTS)."""
    portion = float(portion)
    if not 0.0 < portion < 1.0:
        raise UserError(f"train portion must be between 0 and 1 (exclusive), got {portion}")
    split = int(math.floor(portion * num_samples))
    if split < 1 or split >= num_samples:
        raise UserError(
            f"train portion {portion} leaves one half of the {num_samples} training images empty; use a value nearer 0.5"
        )
    return split


def load_search_data(
    dataset: str,
    data_root: str | os.PathLike,
    portion: float = 0.5,
    image_size: int | None = None,
    download: bool = False,
    limit: int | None = None,
) -> SearchData:
    """The DARTS search split of ``dataset``'s training images, in file order.

    CIFAR-10: [0, portion·50000) train the weights, [portion·50000, 50000) the alphas;
    Fashion-MNIST the same over its 60,000 training images (padded to 32x32 or at 28x28, 3 channels).
    digits: the same over its 1,500 training images (``data_root`` is not used).
    Both halves use the training augmentation (random crop with 4-pixel zero padding,
    horizontal flip, normalisation; no cutout during the search, as in DARTS).
    ``limit`` keeps only the first ``limit`` training images before the split (smoke runs
    and tests: whole epochs on a few images, so every sample gets its teachers).
    """
    _check_dataset(dataset)
    size = _check_image_size(dataset, image_size)
    images, labels, mean, std, num_classes = _training_images(dataset, data_root, size, download)
    if limit is not None:
        if int(limit) < 2:
            raise UserError(f"--limit-samples must be at least 2, got {limit}")
        images, labels = images[: int(limit)], labels[: int(limit)]
    n = int(images.shape[0])
    split = search_split(n, portion)
    transform = train_transform(size, mean, std)
    return SearchData(
        train=IndexedImageDataset(images, labels, torch.arange(0, split), transform),
        valid=IndexedImageDataset(images, labels, torch.arange(split, n), transform),
        valid_plain=IndexedImageDataset(images, labels, torch.arange(split, n), eval_transform(mean, std)),
        num_classes=num_classes,
        num_samples=n,
        image_size=size,
        channels=int(images.shape[1]),
    )


def load_eval_data(
    dataset: str,
    data_root: str | os.PathLike,
    cutout_length: int = 0,
    image_size: int | None = None,
    download: bool = False,
    holdout_portion: float | None = None,
) -> EvalData:
    """Training set (augmentation + cutout after normalisation) and test set (normalised only)
    for training an evaluation network.  CIFAR-10: the 50,000 / 10,000 official sets;
    Fashion-MNIST: its 60,000 / 10,000; digits:
    the first 1,500 / last 297 images.  Items are ``(image, label, index)`` in both.

    With ``holdout_portion`` the test set is never read: the training images are split as in
    the search (:func:`search_split`), the first part trains and the second part is the held-out
    set evaluated instead (DARTS §3.2 selects among searched cells this way, without the test set).
    """
    _check_dataset(dataset)
    size = _check_image_size(dataset, image_size)
    if int(cutout_length) < 0:
        raise UserError(f"cutout length must be >= 0, got {cutout_length}")
    if dataset == "cifar10":
        train_x, train_y, classes = load_cifar10(data_root, train=True, download=download)
        test_x = test_y = None
        if holdout_portion is None:
            test_x, test_y, _ = load_cifar10(data_root, train=False, download=False)
        mean, std, num_classes = CIFAR10_MEAN, CIFAR10_STD, len(classes)
    elif dataset == "fashion-mnist":
        from . import fashion_mnist as fm

        if holdout_portion is None:
            (train_x, train_y), (test_x, test_y) = _fashion_mnist(data_root, size, True, False)
        else:
            ((train_x, train_y),) = _fashion_mnist(data_root, size, True)
            test_x = test_y = None
        mean, std, num_classes = fm.MEAN, fm.STD, fm.NUM_CLASSES
    else:
        from .digits import NUM_CLASSES, NUM_TRAIN, digits_mean_std, load_digits_images

        images, labels = load_digits_images(size)
        train_x, train_y = images[:NUM_TRAIN], labels[:NUM_TRAIN]
        test_x, test_y = images[NUM_TRAIN:], labels[NUM_TRAIN:]
        (mean, std), num_classes = digits_mean_std(size), NUM_CLASSES
    if holdout_portion is not None:
        split = search_split(int(train_x.shape[0]), holdout_portion)
        test_x, test_y = train_x[split:], train_y[split:]
        train_x, train_y = train_x[:split], train_y[:split]
    return EvalData(
        train=IndexedImageDataset(
            train_x,
            train_y,
            torch.arange(train_x.shape[0]),
            train_transform(size, mean, std, cutout_length=int(cutout_length)),
        ),
        test=IndexedImageDataset(test_x, test_y, torch.arange(test_x.shape[0]), eval_transform(mean, std)),
        num_classes=num_classes,
        image_size=size,
        channels=int(train_x.shape[1]),
    )
