"""scikit-learn's bundled handwritten digits as a small real image dataset that works offline.

The default dataset of smoke runs and tests: 1,797 8x8 images made to look like CIFAR-10 (uint8,
3 channels, ``image_size``), 1,500 for training and 297 for test (docs/data.md, "Digits").
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

NUM_CLASSES = 10
NUM_IMAGES = 1797
NUM_TRAIN = 1500
NUM_TEST = NUM_IMAGES - NUM_TRAIN  # 297


@functools.lru_cache(maxsize=4)
def _load(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32) * (255.0 / 16.0)  # (N, 8, 8)
    x = F.interpolate(
        x[:, None], size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=image_size < 8
    )
    images = x.round_().clamp_(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    images.requires_grad_(False)
    return images, labels


def load_digits_images(image_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images as uint8 (N, 3, image_size, image_size) and their labels (int64).

    The returned tensors are shared between calls (cached): do not modify them in place."""
    return _load(int(image_size))


@functools.lru_cache(maxsize=4)
def digits_mean_std(image_size: int = 32) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel (mean, std) of the training images on the [0, 1] scale."""
    images, _ = _load(int(image_size))
    x = images[:NUM_TRAIN].double() / 255.0
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).tolist()
    return tuple(mean), tuple(std)  # type: ignore[return-value]
