"""Checksums that pin the data a paper run reads (docs/pipeline.md, "Data").

CIFAR-10 is checked against torchvision's md5 table (:mod:`sd_darts.data.cifar`).  The
NAS-Bench-201 file and the ImageNet folder are the user's: their SHA-256 (of the file; of the
folder *listing*: every ``train/`` and ``val/`` file's relative path and size, which a full
content hash of 150 GB would make impractical) is recorded in ``params.yaml``
(``data.nb201_benchmark_sha256``, ``data.imagenet_listing_sha256``; ``sd-darts checksum`` prints
them) and checked before a stage uses the data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

from ..errors import UserError
from ..utils.files import open_regular


def sha256_file(path: str | os.PathLike, what: str = "data file") -> str:
    """SHA-256 of a regular file's content (a folder, device or FIFO is a one-line error)."""
    with open_regular(path, what) as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def gunzip_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a ``.gz`` file's decompressed content (a file that is not gzip is a one-line error)."""
    with open_regular(path, "gzip file") as raw, gzip.GzipFile(fileobj=raw) as fh:
        try:
            return hashlib.file_digest(fh, "sha256").hexdigest()
        except (OSError, EOFError) as exc:
            raise UserError(
                f"{path} is not a readable gzip file ({exc}); check the file or hash it without --gunzip"
            ) from None


def listing_sha256(root: str | os.PathLike) -> str:
    """SHA-256 of the sorted ``relative/path<TAB>size`` lines of every file under ``root``.

    A link to a file counts with its target's size; a dangling link or an unreadable entry is a
    one-line error naming it (the listing would not describe the data a run reads).
    """
    root = Path(root)
    h = hashlib.sha256()

    def unreadable(exc: OSError) -> None:
        raise UserError(f"data folder {root}: cannot read {exc.filename} ({exc.strerror}); check its permissions")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            try:
                size = full.stat().st_size
            except FileNotFoundError:
                if not os.path.islink(full):
                    raise UserError(
                        f"data folder {root}: {full.relative_to(root)} vanished while it was listed"
                    ) from None
                raise UserError(
                    f"data folder {root} holds {full.relative_to(root)}, a symbolic link to {os.readlink(full)}, "
                    "which does not exist; restore its target or remove the link"
                ) from None
            except OSError as exc:
                raise UserError(
                    f"data folder {root}: cannot read {full.relative_to(root)} ({exc.strerror}); check its permissions"
                ) from None
            h.update(f"{full.relative_to(root).as_posix()}\t{size}\n".encode())
    return h.hexdigest()


def verify(actual: str, expected: str | None, what: str, key: str) -> str:
    """Refuse data whose checksum differs from the recorded one; returns ``actual``."""
    if expected is not None and actual != expected:
        raise UserError(
            f"{what} has sha256 {actual} but {key} records {expected}: it is not the data this run was pinned to; "
            f"restore the recorded data or, if the change is intended, record the new checksum in {key}"
        )
    return actual
