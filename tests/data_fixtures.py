"""Fake datasets on disk for the tests of more than one folder: CIFAR-10 in torchvision's
python format (with torchvision's md5 tables pointed at it) and an ImageNet folder of JPEGs."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10

FOLDER, ARCHIVE = "cifar-10-batches-py", "cifar-10-python.tar.gz"


# ---------------------------------------------------------------------------- CIFAR-10 files
def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_fake_cifar(folder: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict:
    """CIFAR-10 in the real python format (dict pickles of (N, 3072) uint8 rows, R|G|B planes)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)]
    train_data, train_labels = [], []
    for name in names:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        train_data.append(data)
        train_labels += labels
        with open(folder / name, "wb") as f:
            pickle.dump(
                {
                    "batch_label": name,
                    "labels": labels,
                    "data": data,
                    "filenames": [f"{name}_{k}.png" for k in range(per_batch)],
                },
                f,
                protocol=2,
            )
    test = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    test_labels = rng.integers(0, 10, n_test).tolist()
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"batch_label": "test", "labels": test_labels, "data": test, "filenames": []}, f, protocol=2)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"num_cases_per_batch": per_batch, "label_names": classes, "num_vis": 3072}, f, protocol=2)
    return {
        "train": torch.from_numpy(np.concatenate(train_data)).view(-1, 3, 32, 32),
        "train_labels": train_labels,
        "test": torch.from_numpy(test).view(-1, 3, 32, 32),
        "test_labels": test_labels,
    }


def make_tar(src_root: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src_root / FOLDER, arcname=FOLDER)


def patch_md5_tables(monkeypatch, folder: Path, archive: Path | None) -> None:
    """Point torchvision's CIFAR10 md5 tables at the generated files, so the real code path
    (md5 checks included) runs on them."""
    monkeypatch.setattr(
        CIFAR10, "train_list", [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(
        CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5(folder / "batches.meta")}
    )
    if archive is not None:
        monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive))


# ---------------------------------------------------------------------------- ImageNet folders
WNIDS = ("n01440764", "n01443537", "n01484850")


def _write_jpeg(path: Path, rng: np.random.Generator, size=(48, 40)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=85)


def make_imagenet(root: Path, per_class_train: int = 3, per_class_val: int = 2, wnids=WNIDS) -> Path:
    rng = np.random.default_rng(0)
    for w in wnids:
        for i in range(per_class_train):
            _write_jpeg(root / "train" / w / f"{w}_{i}.JPEG", rng)
        for i in range(per_class_val):
            _write_jpeg(root / "val" / w / f"ILSVRC2012_val_{w}_{i}.JPEG", rng, size=(60, 50))
    return root
