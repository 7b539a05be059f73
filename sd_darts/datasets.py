"""The datasets' names and the input sizes each can be read at: torch-free facts that the
configs check before anything loads, and :mod:`sd_darts.data` reads (docs/data.md)."""

from __future__ import annotations

from .utils.config import setting

#: CIFAR-10 (the paper's), Fashion-MNIST (real, offline), scikit-learn's digits (offline smoke runs).
DATASETS = ("cifar10", "fashion-mnist", "digits")
#: The input sizes a dataset can be read at (its first is the default); digits: any size >= 8.
#: Fashion-MNIST: its 28x28 originals zero-padded to 32x32 (the CIFAR-10 shape), or as they are.
IMAGE_SIZES = {"cifar10": (32,), "fashion-mnist": (32, 28)}
MIN_DIGITS_SIZE = 8


def image_size_problem(dataset: str, image_size: int | None) -> str | None:
    """Why ``dataset`` cannot be read at ``image_size`` (None: its default), or None."""
    if image_size is None:
        return None
    sizes = IMAGE_SIZES.get(dataset)
    if sizes is not None and int(image_size) not in sizes:
        return f"{dataset} is read at {' or '.join(map(str, sizes))} pixels, got {image_size}"
    if sizes is None and int(image_size) < MIN_DIGITS_SIZE:
        return f"must be at least {MIN_DIGITS_SIZE}, got {image_size}"
    return None


def image_size_setting():
    """The ``image_size`` setting of the search and training configs (checked per dataset by
    :func:`image_size_problem` in their ``validate``)."""
    help = f"input size: digits any size >= {MIN_DIGITS_SIZE}, fashion-mnist 28 or 32 (default: 32)"
    return setting(None, help, ge=MIN_DIGITS_SIZE, le=256)
