"""scikit-learn's bundled handwritten digits as a small real image dataset that works offline.

``sklearn.datasets.load_digits`` ships 1,797 8x8 grey images (values 0..16) of 10 classes
inside the scikit-learn package.  They are made to look like CIFAR-10 to the networks:

* scaled to [0, 255] (x * 255 / 16), resized bilinearly to ``image_size`` x ``image_size``
  (default 32), rounded to uint8 and repeated over 3 channels, so exactly the same uint8
  augmentation pipeline as CIFAR-10 applies;
* normalised with the digits' own mean and std, computed once per ``image_size`` over the
  training images (after resizing, on the [0, 1] scale; identical for the 3 channels).

Split (deterministic, in the file order of scikit-learn): the first 1,500 images are the
training set, the last 297 the test set (used only to evaluate trained networks).  The search
splits the 1,500 training images like CIFAR-10: [0, 750) train the weights, [750, 1500) the
alphas (portion 0.5).  The file cycles through the classes, so both parts are balanced.

This is the default dataset of smoke runs and tests.
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
