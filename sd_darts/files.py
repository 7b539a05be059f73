"""Files: atomic writes, safe loads, and the lock on a run folder.

Every file a run writes goes through a temporary file in the same folder and an
``os.replace``: a run interrupted at any moment leaves either the old file or the new one,
never half of one.  The new file gets the permissions a plain ``open()`` would give it
(``0666`` minus the umask), so outputs written in a container are readable by the host user.
A temporary file left by a killed write (``.NAME.XXXX.tmp``) is removed by the next run in
that folder (:func:`remove_stale_temporaries`).

Checkpoints are read with ``torch.load(..., weights_only=True)`` so a file from elsewhere can
never execute code; JSON and YAML inputs are size- and depth-checked before they are parsed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

#: Inputs nested deeper than this (JSON/YAML) are refused before parsing: no settings, metrics or
#: genotype file of the package comes close, and Python's parsers overflow the stack far below 1e5.
MAX_NESTING = 64
#: Text inputs (params, genotypes, metrics) larger than this are refused: they are a few kB.
MAX_TEXT_BYTES = 64 * 2**20

_TMP_SUFFIX = ".tmp"


def _umask() -> int:
    # os.umask can only be read by setting it; restore it at once (single-threaded start-up).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _io_error(path: Path, exc: OSError, what: str = "write") -> UserError:
    reason = exc.strerror or type(exc).__name__
    hint = (
        "free some space"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        else "check the path and its permissions"
    )
    return UserError(f"cannot {what} {path} ({reason}); {hint}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``.

    The file gets mode ``0666 & ~umask`` (``mkstemp`` alone would leave 0600).  An ``OSError``
    while writing (full disk, read-only folder) becomes a one-line :class:`UserError`; the
    temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
    except OSError as exc:
        raise _io_error(path, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        raise _io_error(path, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the ``.NAME.XXXX.tmp`` files that killed atomic writes left in ``folder`` (recursively).

    Only call it while holding the folder's :class:`RunLock`: a live writer's temporary file
    would be removed too.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.rglob(f".*{_TMP_SUFFIX}"):
        if tmp.is_file():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        try:
            tmp.write_text(text)
        except OSError as exc:
            raise _io_error(Path(path), exc) from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_yaml(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=True, default_flow_style=False))


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except (OSError, RuntimeError) as exc:  # torch reports a full disk as RuntimeError
            raise UserError(f"cannot write {path} ({str(exc).splitlines()[0]}); free some space") from None


def torch_load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """Load a torch file without unpickling arbitrary objects."""
    import pickle

    import torch

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder, not a file; point to the file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{what} {path} is not a readable sd-darts file ({first}); delete it or point to another file"
        ) from None


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of a small input file (one-line errors for folders, binary, huge files)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise UserError(f"{what} {path} is a folder, not a file; point to the file")
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise UserError(
                f"{what} {path} is {size} bytes, far too large for this kind of file; point to the right file"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise _io_error(path, exc, "read") from None
    if b"\0" in data:
        raise UserError(
            f"{what} {path} is a binary file, not text (UTF-16 or another encoding?); save it as UTF-8 text"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None


def nesting_depth(text: str) -> int:
    """Upper bound of the bracket nesting of a JSON/YAML flow text (strings are skipped)."""
    depth = deepest = 0
    quote = None
    escaped = False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return deepest


def _check_depth(text: str, path: Path, what: str) -> None:
    if nesting_depth(text) > MAX_NESTING:
        raise UserError(f"{what} {path} is nested more than {MAX_NESTING} levels deep; it is not a file of this kind")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    path = Path(path)
    text = read_text(path, what)
    _check_depth(text, path, what)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"{what} {path} is not valid JSON ({exc})") from None


def read_yaml(path: str | os.PathLike, what: str = "file") -> Any:
    """Parse a small YAML file with ``yaml.safe_load`` (one-line errors)."""
    path = Path(path)
    text = read_text(path, what)
    # Block-style YAML nests by indentation: bound the indentation depth too.
    indent = max((len(line) - len(line.lstrip(" ")) for line in text.splitlines() if line.strip()), default=0)
    if indent > 2 * MAX_NESTING:
        raise UserError(f"{what} {path} is nested more than {MAX_NESTING} levels deep; it is not a file of this kind")
    _check_depth(text, path, what)
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise UserError(f"{what} {path} is not valid YAML ({str(exc).splitlines()[0]})") from None


def check_writable_dir(path: str | os.PathLike, setting: str = "--out") -> Path:
    """Check, without creating anything, that ``path`` can become a writable folder."""
    if str(path).strip() == "":
        raise UserError(f"{setting} is empty; name an output folder")
    path = Path(path).absolute()
    if path.parts[1:2] in (("proc",), ("sys",), ("dev",)):
        raise UserError(f"{setting} {path} is inside a kernel file system; choose a folder on disk")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(
            f"{setting} {path} cannot be created: {probe} is a file, not a folder; choose another {setting}"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{setting} {path} is not writable ({probe} is read-only); choose another {setting}")
    return path


class RunLock:
    """An exclusive OS lock (``flock``) on a run folder, held for the whole run.

    The lock is taken on the folder itself (no lock file is written), so a second process on
    the same folder stops at once with one line instead of interleaving its outputs; the
    kernel releases the lock when the holder exits, however it exits (kill -9 included), so a
    crashed run never leaves the folder locked.  The folder must exist.
    """

    def __init__(self, folder: str | os.PathLike, what: str = "run folder"):
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise _io_error(self.folder, exc, "open") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{self.what} {self.folder} is in use by another running process; "
                "wait for it to finish or choose another --out"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
