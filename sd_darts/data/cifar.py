"""CIFAR-10 through torchvision, with its md5 checks and a safe offline story.

:func:`prepare_cifar10` uses an md5-checked folder, else extracts an md5-checked archive through a
temporary folder, else downloads it (``download=True``), else fails in one line; nothing is
unpickled before its md5 matched the official table (docs/data.md, "CIFAR-10").
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import calculate_md5, check_integrity

from ..errors import UserError

log = logging.getLogger("sd_darts")

FOLDER = CIFAR10.base_folder  # "cifar-10-batches-py"
ARCHIVE = CIFAR10.filename  # "cifar-10-python.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"  # == torchvision's CIFAR10.tgz_md5

# DARTS normalisation (FIDELITY.md): per-channel mean and std of the CIFAR-10 training set.
CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
NUM_CLASSES = 10
NUM_TRAIN = 50_000
NUM_TEST = 10_000

_HOWTO = f"download {URL} into {{root}}, or rerun with --download (download: true in params.yaml)"


def _expected_files() -> list[tuple[str, str]]:
    """(file name, md5) of the extracted folder, read from torchvision's table at call time."""
    return [(n, m) for n, m in CIFAR10.train_list + CIFAR10.test_list] + [
        (CIFAR10.meta["filename"], CIFAR10.meta["md5"])
    ]


def _folder_problem(folder: Path) -> str | None:
    """None when every expected file exists and passes its md5 check, else what is wrong."""
    for name, md5 in _expected_files():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if not check_integrity(str(path), md5):
            return f"{name} fails its md5 check"
    return None


def _check_archive(archive: Path) -> None:
    expected = CIFAR10.tgz_md5
    actual = calculate_md5(str(archive))
    if actual != expected:
        raise UserError(
            f"{archive} fails its md5 check (got {actual}, expected {expected}): the file is corrupt or incomplete; "
            f"delete it and download {URL} again"
        )


def _extract(archive: Path, root: Path) -> Path:
    """Extract into a temporary folder in ``root``; rename into place only when complete."""
    folder = root / FOLDER
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".cifar-10-extract-", dir=root))
    except OSError as exc:
        raise UserError(
            f"cannot extract {archive}: {root} is not writable ({exc.strerror}); choose another data folder"
        ) from None
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise UserError(f"{archive} cannot be extracted ({exc}); delete it and download {URL} again") from None
        except OSError as exc:
            raise UserError(
                f"extracting {archive} into {root} failed ({exc.strerror or exc}); free space or choose another data folder"
            ) from None
        extracted = tmp / FOLDER
        if not extracted.is_dir():
            raise UserError(f"{archive} does not contain the folder {FOLDER}; delete it and download {URL} again")
        problem = _folder_problem(extracted)
        if problem is not None:
            raise UserError(
                f"the folder extracted from {archive} is not CIFAR-10 ({problem}); delete it and download {URL} again"
            )
        try:
            os.rename(extracted, folder)
        except OSError:
            # Another process may have finished the same extraction first.
            if not (folder.is_dir() and _folder_problem(folder) is None):
                raise
        return folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download(root: Path) -> None:
    from torchvision.datasets.utils import download_url

    part = f".{ARCHIVE}.part"
    created = [p for p in (root, *root.parents) if not p.exists()]  # removed again if the download fails
    try:
        root.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s into %s", URL, root)
        download_url(URL, str(root), filename=part)
    except Exception as exc:  # network, HTTP, disk: all become one line
        (root / part).unlink(missing_ok=True)
        for folder in created:  # deepest first; only folders this call made, and only if empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"could not download {URL} ({first}); " + _HOWTO.format(root=root)) from None
    try:
        _check_archive(root / part)
    except UserError:
        (root / part).unlink(missing_ok=True)
        raise UserError(
            f"the download of {URL} is corrupt (md5 mismatch); try again or " + _HOWTO.format(root=root)
        ) from None
    os.replace(root / part, root / ARCHIVE)


def prepare_cifar10(root: str | os.PathLike, download: bool = False) -> Path:
    """Make sure ``<root>/cifar-10-batches-py`` exists and passes its md5 checks; return it."""
    root = Path(root).expanduser()
    folder = root / FOLDER
    archive = root / ARCHIVE
    if folder.is_dir():
        problem = _folder_problem(folder)
        if problem is None:
            return folder
        fix = (
            f"delete that folder and it will be re-extracted from {archive}"
            if archive.is_file()
            else "delete that folder and " + _HOWTO.format(root=root)
        )
        raise UserError(f"CIFAR-10 folder {folder} is incomplete or corrupted ({problem}); {fix}")
    if not archive.is_file():
        if root.exists() and not root.is_dir():
            raise UserError(f"data folder {root} is a file; point the data root to a folder")
        if not download:
            raise UserError(
                f"CIFAR-10 not found: expected the archive {archive} or its extracted folder {folder}; "
                + _HOWTO.format(root=root)
            )
        _download(root)
    _check_archive(archive)
    log.info("extracting %s", archive)
    return _extract(archive, root)


def load_cifar10(
    root: str | os.PathLike, train: bool = True, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,), class names)`` of the training set
    (``train=True``, 50,000 images in file order) or the test set (10,000)."""
    root = Path(root).expanduser()
    prepare_cifar10(root, download=download)
    try:
        ds = CIFAR10(str(root), train=train, download=False)
    except RuntimeError as exc:
        raise UserError(
            f"CIFAR-10 in {root / FOLDER} cannot be read ({exc}); delete the folder and extract {ARCHIVE} again"
        ) from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return images, labels, list(ds.classes)
