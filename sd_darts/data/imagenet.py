"""ILSVRC2012 (ImageNet-1k) from a local class-folder layout, for the evaluation of paper §4.3.

``<root>/train/<wnid>/*.JPEG`` and ``<root>/val/<wnid>/*.JPEG``; PC-DARTS's augmentation, which the
paper follows.  Layout and recipe: docs/evaluation.md, "Training on ImageNet".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from ..errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: File endings accepted as images (ILSVRC2012 uses ``.JPEG``); compared case-insensitively.
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
#: Crop-to-resize ratio of the evaluation transform (Resize 256 -> CenterCrop 224).
EVAL_RESIZE_RATIO = 256 / 224


def expected_layout(root: str | os.PathLike) -> str:
    return (
        f"expected {root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG "
        "(validation images sorted into the same class folders, e.g. with valprep.sh)"
    )


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _scan_split(root: Path, split: str) -> dict[str, list[str]]:
    """Map each class folder of ``root/split`` to its sorted image paths."""
    folder = root / split
    if not folder.is_dir():
        raise UserError(f"ImageNet folder {root} has no {split}/ folder; {expected_layout(root)}")
    classes: dict[str, list[str]] = {}
    loose_images = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                classes[entry.name] = []
            elif _is_image(entry.name):
                loose_images += 1
    if not classes:
        if loose_images:
            raise UserError(
                f"{folder} holds {loose_images} images directly instead of class folders; {expected_layout(root)}"
            )
        raise UserError(f"{folder} has no class folders; {expected_layout(root)}")
    for wnid in classes:
        with os.scandir(folder / wnid) as entries:
            files = sorted(e.path for e in entries if e.is_file() and _is_image(e.name))
        if not files:
            raise UserError(f"class folder {folder / wnid} holds no images (.JPEG/.jpg/.png); {expected_layout(root)}")
        classes[wnid] = files
    return classes


def scan_imagenet(root: str | os.PathLike) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    """Check the layout of ``root`` and return ``(wnids, train_samples, val_samples)``.

    Samples are ``(path, label)`` with ``label`` the index of the wnid in the sorted class
    list.  Train and val must hold the same classes.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise UserError(f"ImageNet folder {root} {what}; set --data-root; {expected_layout(root)}")
    train = _scan_split(root, "train")
    val = _scan_split(root, "val")
    if set(train) != set(val):
        only_train = sorted(set(train) - set(val))
        only_val = sorted(set(val) - set(train))
        side = (
            f"val/ lacks {len(only_train)} classes of train/ (first: {only_train[0]})"
            if only_train
            else f"val/ has {len(only_val)} classes not in train/ (first: {only_val[0]})"
        )
        raise UserError(f"ImageNet folder {root}: {side}; {expected_layout(root)}")
    wnids = sorted(train)
    label = {w: i for i, w in enumerate(wnids)}
    train_samples = [(p, label[w]) for w in wnids for p in train[w]]
    val_samples = [(p, label[w]) for w in wnids for p in val[w]]
    return wnids, train_samples, val_samples


class ImageFolderSplit(Dataset):
    """One split of an ImageNet folder; items are ``(image, label, index)``."""

    def __init__(self, samples: list[tuple[str, int]], transform: Callable, classes: list[str]):
        self.samples = samples
        self.transform = transform
        self.classes = classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        from PIL import Image, UnidentifiedImageError

        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                image = img.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"cannot read image {path} ({exc}); remove or replace the file") from None
        return self.transform(image), label, index


def imagenet_transforms(image_size: int, train: bool, cutout_length: int = 0) -> Callable:
    """PC-DARTS ImageNet transforms; ``cutout_length > 0`` adds Cutout after normalisation."""
    from torchvision import transforms as T

    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    if not train:
        return T.Compose(
            [
                T.Resize(round(image_size * EVAL_RESIZE_RATIO)),
                T.CenterCrop(image_size),
                T.ToTensor(),
                normalize,
            ]
        )
    steps = [
        T.RandomResizedCrop(image_size),
        T.RandomHorizontalFlip(),
        T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2),
        T.ToTensor(),
        normalize,
    ]
    if cutout_length > 0:
        from .common import Cutout

        steps.append(Cutout(cutout_length))
    return T.Compose(steps)


def load_imagenet(data_root: str | os.PathLike, image_size: int = 224, cutout_length: int = 0):
    """Return the ImageNet train and val splits as an :class:`sd_darts.data.EvalData`."""
    from . import EvalData

    wnids, train_samples, val_samples = scan_imagenet(data_root)
    return EvalData(
        train=ImageFolderSplit(train_samples, imagenet_transforms(image_size, True, cutout_length), wnids),
        test=ImageFolderSplit(val_samples, imagenet_transforms(image_size, False), wnids),
        num_classes=len(wnids),
        image_size=image_size,
    )
