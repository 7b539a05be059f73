"""Fashion-MNIST (Xiao et al., 2017): 60,000 training and 10,000 test images, 28x28 grey, 10
classes, in the original idx files, prepared offline from Debian's ``dataset-fashion-mnist``
or any folder holding the four files (``.gz`` or not).

:func:`prepare_fashion_mnist` writes the decompressed files to ``<root>/FashionMNIST/raw/`` (the
layout torchvision's ``FashionMNIST`` reads), each checked against the sha256 of its decompressed
content (Debian recompressed the ``.gz``, so torchvision's md5 list does not apply; the content
is the original).  For the networks the images are repeated over 3 channels and, by default,
zero-padded to 32x32, so the CIFAR-10 pipeline and networks apply unchanged; ``image_size: 28``
keeps the originals' size (0.55x the convolutions' work; docs/choices.md).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..utils import files
from .checksums import sha256_file

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
RAW = Path("FashionMNIST") / "raw"
NUM_CLASSES = 10
NUM_TRAIN = 60_000
NUM_TEST = 10_000
ORIGINAL_SIZE = 28
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# the standard normalisation: mean and std of the 60,000 training images (28x28, [0, 1] scale)
MEAN = (0.2860406,) * 3
STD = (0.3530242,) * 3
#: sha256 of each decompressed idx file (the originals; ``sd-darts checksum FILE`` prints one)
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
_HOWTO = f"apt-get install dataset-fashion-mnist (files in {DEBIAN_DIR}) or set data.fashion_mnist_source to a folder holding the four files"


def _source_file(source: Path, name: str) -> Path:
    for candidate in (source / name, source / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(f"Fashion-MNIST file {name}(.gz) is missing from {source}; {_HOWTO}")


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else files.open_regular(path, "Fashion-MNIST file")


def _check(path: Path, sha256: str) -> bool:
    return sha256_file(path, "Fashion-MNIST file") == sha256


def prepare_fashion_mnist(
    root: str | os.PathLike, source: str | os.PathLike | None = None, sha256: dict[str, str] | None = None
) -> Path:
    """``<root>/FashionMNIST/raw/`` with the four decompressed idx files, each checked against
    ``sha256`` (default :data:`SHA256`); files already there and intact are kept, others are
    written atomically from ``source`` (default: Debian's folder).  A missing or wrong file is a
    one-line error naming it."""
    raw = Path(root) / RAW
    source = Path(source or DEBIAN_DIR)
    expected = SHA256 if sha256 is None else sha256
    for name in SHA256:
        target = raw / name
        if target.is_file() and _check(target, expected[name]):
            continue
        origin = _source_file(source, name)
        with files.atomic_path(target) as tmp:
            try:
                with _open(origin) as fin, open(tmp, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 4 * 2**20)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise UserError(f"Fashion-MNIST file {origin} cannot be read ({exc}); {_HOWTO}") from None
            if not _check(tmp, expected[name]):
                raise UserError(
                    f"Fashion-MNIST file {origin} does not hold the original {name} (its decompressed sha256 differs); "
                    f"{_HOWTO}"
                )
    return raw


def _read_idx(path: Path, name: str, magic: int, count: int) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"Fashion-MNIST file {path} is missing; run the data stage (sd-darts data) or {_HOWTO}")
    with files.open_regular(path, "Fashion-MNIST file") as fh:
        data = fh.read()
    if hashlib.sha256(data).hexdigest() != SHA256[name]:  # the bytes read, checked once
        raise UserError(f"Fashion-MNIST file {path} fails its sha256 check; delete it and prepare the folder again")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise UserError(f"{path} is not an idx file of this kind (bad magic number); prepare the data folder again")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if dims[0] != count or len(data) != header + int(np.prod(dims)):
        raise UserError(f"{path} holds {dims} items, expected {count}: the file is truncated or not Fashion-MNIST")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_fashion_mnist_raw(root: str | os.PathLike, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The original images (uint8 (N, 28, 28)) and labels (int64), in file order, from a folder
    :func:`prepare_fashion_mnist` made (each file's checksum is verified as it is read)."""
    raw = Path(root) / RAW
    split, count = ("train", NUM_TRAIN) if train else ("t10k", NUM_TEST)
    arrays = []
    for kind, magic in (("images-idx3", 0x803), ("labels-idx1", 0x801)):
        name = f"{split}-{kind}-ubyte"
        arrays.append(_read_idx(raw / name, name, magic, count))
    return torch.from_numpy(arrays[0].copy()), torch.from_numpy(arrays[1].astype(np.int64))


def load_fashion_mnist(
    root: str | os.PathLike, train: bool = True, size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as the networks read them: uint8 (N, 3, size, size), the 28x28 originals zero-padded
    by ``(size - 28) / 2`` pixels of background (2 at the default 32) and repeated over 3 channels;
    and the labels."""
    if size < ORIGINAL_SIZE or (size - ORIGINAL_SIZE) % 2:
        raise UserError(f"Fashion-MNIST is read at 28 pixels or padded evenly to more, got {size}")
    images, labels = load_fashion_mnist_raw(root, train)
    pad = (size - ORIGINAL_SIZE) // 2
    images = F.pad(images[:, None], (pad, pad, pad, pad)).expand(-1, 3, -1, -1).contiguous()
    return images, labels
