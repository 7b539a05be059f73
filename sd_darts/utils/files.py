"""Files: atomic writes, safe loads, and the lock on a run folder.

A run interrupted at any moment leaves the old file or the new one, never half; nothing read can
execute code, hang or exhaust memory, and nothing is written through a link.  The rules and how
each is kept: docs/ARCHITECTURE.md, "Files".
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from ..errors import UserError

#: Inputs nested deeper than this (JSON/YAML) are refused before parsing: no settings, metrics or
#: genotype file of the package comes close, and Python's parsers overflow the stack far below 1e5.
MAX_NESTING = 64
#: Text inputs (params, genotypes, metrics) larger than this are refused: they are a few kB.
MAX_TEXT_BYTES = 64 * 2**20

#: A run folder holding more entries than this is not a run folder (bounds the link check's walk).
MAX_TREE_ENTRIES = 100_000

_TMP_SUFFIX = ".tmp"


def _umask() -> int:
    # os.umask can only be read by setting it; restore it at once (single-threaded start-up).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def io_error(path: Path, exc: OSError, what: str = "write") -> UserError:
    """``exc`` of a ``what`` on ``path`` as a one-line UserError (the disk is full, no permission, ...)."""
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
        raise io_error(path, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        raise io_error(path, exc) from None
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
            raise io_error(Path(path), exc) from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_yaml(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, yaml.dump(obj, Dumper=_PlainDumper, sort_keys=True, default_flow_style=False))


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except (OSError, RuntimeError) as exc:  # torch reports a full disk as RuntimeError
            raise UserError(f"cannot write {path} ({str(exc).splitlines()[0]}); free some space") from None


def torch_load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """Load a torch file without unpickling arbitrary objects (regular files only)."""
    import pickle

    import torch

    path = Path(path)
    with open_regular(path, what) as fh:
        try:
            return torch.load(fh, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, UnicodeDecodeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"{what} {path} is not a readable sd-darts file ({first[:200]}); delete it or point to another file"
            ) from None


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` is, in words (``a folder``, ``a FIFO (named pipe)``, ...)."""
    for test, words in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def _not_regular(path: Path, mode: int, what: str) -> UserError:
    if stat.S_ISDIR(mode):
        return UserError(f"{what} {path} is a folder, not a file; point to the file")
    return UserError(f"{what} {path} is {file_kind(mode)}, not a regular file; point to the file")


def _missing(path: Path, what: str) -> UserError:
    if os.path.islink(path):
        return UserError(
            f"{what} {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
            "restore its target or point to the file"
        )
    return UserError(f"{what} {path} does not exist")


def open_regular(path: str | os.PathLike, what: str = "file") -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file (symbolic links are followed).

    A folder, device, FIFO or socket is refused before it is opened (and checked again on the
    open descriptor, which is opened non-blocking so a FIFO can never hang the caller).
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _missing(path, what) from None
    except OSError as exc:
        raise io_error(path, exc, "read") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode, what)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike, what: str = "file", cap: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes (at most ``cap + 1`` are ever read)."""
    path = Path(path)
    too_large = f"far too large for this kind of file (more than {cap} bytes); point to the right file"
    with open_regular(path, what) as fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            if size > cap:
                raise UserError(f"{what} {path} is {size} bytes, {too_large}")
            data = fh.read(cap + 1)
        except OSError as exc:
            raise io_error(path, exc, "read") from None
    if len(data) > cap:
        raise UserError(f"{what} {path} grew while it was read: {too_large}")
    return data


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of a small input file (one-line errors for folders, binary, huge files)."""
    path = Path(path)
    data = read_bytes(path, what)
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


class _YamlRefusal(yaml.YAMLError):
    """A YAML construct the package refuses (an alias, a duplicate key); ``str`` is the reason."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases and with duplicate keys refused.

    An alias (``*name``) can expand a few hundred bytes into millions of nodes; no input of the
    package needs one.  A key given twice in one mapping would silently let the last one win.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _YamlRefusal(
                f"it uses the YAML alias *{event.anchor[:40]} at line {event.start_mark.line + 1}; "
                "write the value out instead of aliasing it"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _YamlRefusal(
                            f"it has the key {bounded(key)} twice in one mapping (lines {seen[key]} and {line}); "
                            "keep one of them"
                        )
                    seen[key] = line
                except TypeError:
                    continue  # an unhashable key: SafeLoader refuses it below
        return super().construct_mapping(node, deep=deep)


class _PlainDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes repeated objects out (what :class:`StrictLoader` reads)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def bounded(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (``…`` at the end): values echoed in one-line messages.

    Big containers are abbreviated before they are turned into text, so this is cheap for any value.
    """
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = short.maxlong = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = short.maxfrozenset = max(limit // 8, 2)
    short.maxlevel = 3
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def key_text(key: Any, limit: int = 80) -> str:
    """A mapping key as it is named in a message: a short string as is, anything else :func:`bounded`."""
    return key if isinstance(key, str) and len(key) <= limit and key.isprintable() else bounded(key, limit)


def read_yaml(path: str | os.PathLike, what: str = "file") -> Any:
    """Parse a small YAML file with :class:`StrictLoader` (safe, no aliases, no duplicate keys; one-line errors)."""
    path = Path(path)
    text = read_text(path, what)
    # Block-style YAML nests by indentation: bound the indentation depth too.
    indent = max((len(line) - len(line.lstrip(" ")) for line in text.splitlines() if line.strip()), default=0)
    if indent > 2 * MAX_NESTING:
        raise UserError(f"{what} {path} is nested more than {MAX_NESTING} levels deep; it is not a file of this kind")
    _check_depth(text, path, what)
    try:
        return yaml.load(text, Loader=StrictLoader)
    except _YamlRefusal as exc:
        raise UserError(f"{what} {path} is refused: {exc}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{what} {path} is not valid YAML ({first[:200]})") from None


def _refuse_links(folder: Path, setting: str) -> None:
    """Refuse a symbolic link anywhere under ``folder`` (walked in name order without following links, bounded)."""
    stack, seen = [folder], 0
    while stack:
        current = stack.pop()
        entries = []
        try:
            with os.scandir(current) as scan:
                for entry in scan:
                    seen += 1
                    if seen > MAX_TREE_ENTRIES:
                        raise UserError(
                            f"{setting} {folder} holds more than {MAX_TREE_ENTRIES} files: it is not a run folder; "
                            f"choose another {setting}"
                        )
                    entries.append(entry)
            entries.sort(key=lambda e: e.name)
            for entry in entries:
                if entry.is_symlink():
                    raise UserError(
                        f"{setting} {folder} holds the symbolic link {Path(entry.path).relative_to(folder)} "
                        f"(to {os.readlink(entry.path)}); sd-darts never writes through links: replace it with "
                        f"a real folder or file, or choose another {setting}"
                    )
            stack.extend(Path(e.path) for e in reversed(entries) if e.is_dir(follow_symlinks=False))
        except OSError as exc:
            raise io_error(Path(current), exc, "read") from None


def check_writable_dir(path: str | os.PathLike, setting: str = "--out", tree: bool = True) -> Path:
    """Check, without creating anything, that ``path`` can become a writable folder.

    A dangling symbolic link on the way is refused; so is (``tree``: the folder is the output
    itself, not the parent of an output file) any symbolic link inside an existing ``path``.
    """
    if str(path).strip() == "":
        raise UserError(f"{setting} is empty; name an output folder")
    path = Path(path).absolute()
    if path.parts[1:2] in (("proc",), ("sys",), ("dev",)):
        raise UserError(f"{setting} {path} is inside a kernel file system; choose a folder on disk")
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            raise UserError(
                f"{setting} {path} cannot be created: {probe} is a symbolic link to {os.readlink(probe)}, "
                f"which does not exist; remove the link or choose another {setting}"
            )
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(
            f"{setting} {path} cannot be created: {probe} is a file, not a folder; choose another {setting}"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{setting} {path} is not writable ({probe} is read-only); choose another {setting}")
    if tree and probe == path:
        _refuse_links(path, setting)
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
            raise io_error(self.folder, exc, "open") from None
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
