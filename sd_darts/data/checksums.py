"""Checksums that pin the data a paper run reads (docs/pipeline.md, "Data").

CIFAR-10 is checked against torchvision's md5 table (:mod:`sd_darts.data.cifar`).  The
NAS-Bench-201 file and the ImageNet folder are the user's: their SHA-256 (of the file; of the
folder *listing*: every ``train/`` and ``val/`` file's relative path and size, which a full
content hash of 150 GB would make impractical) is recorded in ``params.yaml``
(``data.nb201_benchmark_sha256``, ``data.imagenet_listing_sha256``; ``sd-darts checksum`` prints
them) and checked before a stage uses the data.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import UserError

CHUNK = 4 * 2**20


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def listing_sha256(root: str | os.PathLike) -> str:
    """SHA-256 of the sorted ``relative/path<TAB>size`` lines of every file under ``root``."""
    root = Path(root)
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            h.update(f"{full.relative_to(root).as_posix()}\t{full.stat().st_size}\n".encode())
    return h.hexdigest()


def verify(actual: str, expected: str | None, what: str, key: str) -> str:
    """Refuse data whose checksum differs from the recorded one; returns ``actual``."""
    if expected is not None and actual != expected:
        raise UserError(
            f"{what} has sha256 {actual} but {key} records {expected}: it is not the data this run was pinned to; "
            f"restore the recorded data or, if the change is intended, record the new checksum in {key}"
        )
    return actual
