"""Writing the report into its output folder without ever touching a file it did not write.

A manifest (:data:`MANIFEST`) lists every file the report wrote with its SHA-256; files are
staged and moved in so that no crash leaves a folder the next run refuses (docs/report.md).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..utils import files

log = logging.getLogger(__name__)

MANIFEST = ".sd-darts-report.json"
_STAGING = ".staging-"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _refuse(out: Path, problem: str) -> UserError:
    return UserError(f"--out {out} {problem}")


def _read_manifest(out: Path) -> dict[str, dict[str, str]]:
    path = out / MANIFEST
    hint = f"delete {path} only if every file it lists is yours to lose, or choose another --out"
    if path.is_symlink():  # the report writes a regular file; a link is not its manifest
        raise UserError(
            f"report manifest {path} is a symbolic link to {os.readlink(path)}, not a file the report wrote; {hint}"
        )
    try:
        data = json.loads(files.read_text(path, "report manifest"))
    except (json.JSONDecodeError, RecursionError):
        raise UserError(f"report manifest {path} is unreadable; {hint}") from None
    ok = isinstance(data, dict) and isinstance(data.get("files"), dict)
    tables = {"files": data.get("files") if ok else None, "pending": data.get("pending", {}) if ok else None}
    for table in tables.values():
        if not isinstance(table, dict) or not all(
            isinstance(k, str) and _NAME.fullmatch(k) and k != MANIFEST and isinstance(v, str) and len(v) == 64
            for k, v in table.items()
        ):
            raise UserError(f"report manifest {path} is malformed; {hint}")
    return tables


def _known_only(out: Path, manifest: dict[str, dict[str, str]], known: set[str]) -> dict[str, dict[str, str]]:
    """The manifest without entries of names the report never writes (an edited or copied
    manifest): those files are left alone, as any foreign file, and no longer listed."""
    for name in sorted({*manifest["files"], *manifest["pending"]} - known):
        log.warning("%s lists %s, which the report never writes: left alone and no longer listed", out / MANIFEST, name)
    return {table: {k: v for k, v in entries.items() if k in known} for table, entries in manifest.items()}


def check_output(
    out_dir: str | os.PathLike, names: list[str], known: Iterable[str] | None = None
) -> dict[str, dict[str, str]] | None:
    """Check that the report may write ``names`` into ``out_dir``; return its manifest (None
    for a new or empty folder).  ``known``: every name the report can write (default:
    ``names``); the manifest's other entries are ignored, so the report never deletes or
    replaces a file of another name, whatever the manifest says.  Raises :class:`UserError`
    without writing anything."""
    # empty name, kernel file systems, read-only parents; links among the names it writes are checked below
    files.check_writable_dir(out_dir, "--out", tree=False)
    out = Path(out_dir).absolute()
    if (out.exists() and not out.is_dir()) or (out.is_symlink() and not out.exists()):
        raise _refuse(out, "is not a folder; choose a new or empty folder")
    if not out.exists():
        return None
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise _refuse(out, f"cannot be read ({exc.strerror}); choose another folder") from None
    if not os.access(out, os.W_OK | os.X_OK) or not os.access(out.parent, os.W_OK | os.X_OK):
        raise _refuse(out, "is not writable (it and the folder holding it must be); choose another --out")
    if not entries:
        return None
    if MANIFEST not in entries:
        raise _refuse(
            out,
            f"is not empty and holds no report of sd-darts (no {MANIFEST}); the report never overwrites or "
            "deletes files it did not write: choose a new or empty folder",
        )
    manifest = _known_only(out, _read_manifest(out), set(names if known is None else known) | set(names))
    for name in sorted(set(names) | set(manifest["files"])):
        path = out / name
        if not path.exists() and not path.is_symlink():
            continue
        if path.is_symlink() or not path.is_file():
            raise _refuse(out, f"holds {name}, which is not a regular file the report wrote; move it away first")
        accepted = {manifest["files"].get(name), manifest["pending"].get(name)} - {None}
        if not accepted:
            raise _refuse(out, f"holds {name}, which the report did not write (not in {MANIFEST}); move it away first")
        if sha256(files.read_bytes(path, "report file")) not in accepted:
            raise _refuse(
                out, f"holds {name}, which was changed since the report wrote it; move your copy away (or restore it)"
            )
    return manifest


def _write_manifest(out: Path, current: dict[str, str], pending: dict[str, str] | None = None) -> None:
    body: dict[str, Any] = {"written_by": "sd-darts report", "files": dict(sorted(current.items()))}
    if pending:
        body["pending"] = dict(sorted(pending.items()))
    files.write_text(out / MANIFEST, json.dumps(body, indent=2, sort_keys=True) + "\n")


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        with files.atomic_path(dst) as tmp:  # another file system: copy, then rename
            shutil.copyfile(src, tmp)


def _staging_name(out: Path) -> re.Pattern:
    """The names of this output's staging folders; ``out.name`` is literal (``rep*`` is no pattern)."""
    return re.compile(re.escape(f".{out.name}{_STAGING}") + r"[A-Za-z0-9_]+")


def _remove_stale_staging(out: Path) -> None:
    """Remove staging folders of this output left by a killed report (only report files in them);
    one a running report holds (its lock, :class:`~sd_darts.utils.files.RunLock`) is left alone."""
    pattern = _staging_name(out)
    for folder in sorted(p for p in out.parent.iterdir() if pattern.fullmatch(p.name)):
        if folder.is_dir() and not folder.is_symlink():
            try:
                lock = files.RunLock(folder, "staging folder").acquire()
            except UserError:
                continue  # a live report is writing into it
            try:
                inside = list(folder.iterdir())
                if all(p.is_file() and not p.is_symlink() and _NAME.fullmatch(p.name) for p in inside):
                    shutil.rmtree(folder, ignore_errors=True)
            finally:
                lock.release()


def write_output(out_dir: str | os.PathLike, contents: dict[str, bytes], manifest: dict | None) -> list[Path]:
    """Write ``contents`` (file name → bytes) into ``out_dir`` as described above; ``manifest``:
    what :func:`check_output` returned.  Returns the written files, sorted."""
    out = Path(out_dir).absolute()
    old = dict(manifest["files"]) if manifest else {}
    new = {name: sha256(data) for name, data in contents.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{_STAGING}", dir=out.parent))
    except OSError as exc:
        raise _refuse(out, f"cannot be staged next to it ({exc.strerror}); choose another --out") from None
    lock = files.RunLock(staging, "staging folder").acquire()  # no other report removes it meanwhile
    try:
        for name, data in sorted(contents.items()):
            (staging / name).write_bytes(data)
        out.mkdir(exist_ok=True)
        _write_manifest(out, old, pending=new)
        for name in sorted(contents):
            _move(staging / name, out / name)
        for name in sorted(set(old) - set(new)):
            (out / name).unlink(missing_ok=True)
        _write_manifest(out, new)
    except OSError as exc:
        raise UserError(
            f"writing the report into {out} failed ({exc.strerror or exc}); the files already there are the "
            "old report's or the new one's, and rerunning the report completes it"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock.release()
    return sorted(out / name for name in contents)
