"""Resumable checkpoints: a dict of tensors and plain values written atomically after every
epoch and read with ``weights_only=True``; a resume with other settings, a damaged or edited
file, or a state that does not fit is refused in one line, before the run folder is touched.
Stacked seeds commit their checkpoints as one (:class:`CheckpointGroup`).

What a checkpoint carries and how a group commit settles: docs/ARCHITECTURE.md, "Checkpoints".
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from . import config as config_mod
from .files import io_error, torch_load, torch_save

FORMAT = "sd-darts-checkpoint-v2"


def _digest(obj: Any, h: Any) -> None:
    """Feed a canonical encoding of ``obj`` (nested dicts/lists of tensors and scalars) to ``h``."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, Mapping):
        h.update(b"D%d" % len(obj))
        for key in sorted(obj, key=repr):
            _digest(key, h)
            _digest(obj[key], h)
    elif isinstance(obj, (list, tuple)):
        h.update(b"L%d" % len(obj))
        for item in obj:
            _digest(item, h)
    elif isinstance(obj, bool) or obj is None:
        h.update(repr(obj).encode())
    elif isinstance(obj, int):
        h.update(b"I" + str(obj).encode())
    elif isinstance(obj, float):
        h.update(b"F" + struct.pack("<d", obj))
    elif isinstance(obj, (str, bytes)):
        data = obj.encode() if isinstance(obj, str) else obj
        h.update(b"S%d:" % len(data) + data)
    else:
        h.update(b"?" + type(obj).__name__.encode() + repr(obj).encode())


def checksum(payload: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    _digest({k: v for k, v in payload.items() if k != "checksum"}, h)
    return h.hexdigest()


def save_checkpoint(path: str | Path, cfg, kind: str, state: dict[str, Any]) -> None:
    """Write ``state`` plus the settings fingerprint of ``cfg`` and a checksum atomically to ``path``."""
    payload = {
        "format": FORMAT,
        "kind": kind,
        "settings": config_mod.fingerprint_fields(cfg),
        "fingerprint": config_mod.fingerprint(cfg),
        **state,
    }
    payload["checksum"] = checksum(payload)
    torch_save(path, payload)


def load_checkpoint_if_any(path: str | Path, cfg, kind: str, required: Mapping[str, type | tuple] | None = None):
    """Return the checkpoint at ``path`` if it exists, is intact and was made with the same settings.

    ``required`` maps the keys this kind of run needs to their types.  Raises :class:`UserError`
    (one line) if the file is not an sd-darts checkpoint of this ``kind``, fails its checksum,
    lacks a key or has one of the wrong type, or was made with different settings.
    """
    path = Path(path)
    if not path.exists():
        return None
    ckpt = torch_load(path)
    fix = "delete it to start afresh, or choose another --out"
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"{path} is not an sd-darts checkpoint of this version (format {found!r}); {fix}")
    if ckpt.get("kind") != kind:
        raise UserError(f"{path} is a {ckpt.get('kind')} checkpoint, not a {kind} one; choose another --out")
    if ckpt.get("checksum") != checksum(ckpt):
        raise UserError(f"checkpoint {path} fails its checksum (damaged or edited after it was written); {fix}")
    if ckpt.get("fingerprint") != config_mod.fingerprint(cfg):
        saved = ckpt.get("settings") if isinstance(ckpt.get("settings"), dict) else {}
        diffs = config_mod.diff_settings(saved, config_mod.fingerprint_fields(cfg))
        raise UserError(
            f"checkpoint {path} was made with different settings ({'; '.join(diffs) or 'unknown difference'}); "
            "rerun with the same settings to resume, or use a new --out"
        )
    for key, typ in (required or {}).items():
        if key not in ckpt:
            raise UserError(f"checkpoint {path} has no '{key}'; {fix}")
        if not isinstance(ckpt[key], typ) or isinstance(ckpt[key], bool) and typ is int:
            raise UserError(f"checkpoint {path}: '{key}' has the wrong type ({type(ckpt[key]).__name__}); {fix}")
    return ckpt


def restore(path: str | Path, what: str, load: Callable[[], Any]) -> Any:
    """Run ``load()`` (e.g. ``model.load_state_dict(ckpt["model"])``); any failure is one line."""
    try:
        return load()
    except UserError:
        raise
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"checkpoint {path}: its {what} does not fit this run ({first[:200]}); "
            "delete it to start afresh, or choose another --out"
        ) from None


def check_epoch(path: str | Path, value: int, total: int, what: str = "epoch") -> int:
    """A checkpoint's epoch counter must lie in ``[0, total]``."""
    if not 0 <= value <= total:
        raise UserError(f"checkpoint {path}: {what} {value} is outside 0..{total}; delete it or choose another --out")
    return value


NEXT_SUFFIX = ".next"


def next_path(path: str | Path) -> Path:
    """Where a group commit writes ``path``'s next checkpoint before renaming it over ``path``."""
    path = Path(path)
    return path.with_name(path.name + NEXT_SUFFIX)


def commit_file(src: Path, dst: Path) -> None:
    """Rename ``src`` over ``dst`` (atomic); an ``OSError`` is one line."""
    try:
        os.replace(src, dst)
    except OSError as exc:
        raise io_error(dst, exc) from None


def remove_file(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise io_error(path, exc, "remove") from None


class CheckpointGroup:
    """The checkpoints of runs trained together, committed all or none.

    :meth:`save` writes every run's ``checkpoint.pt.next`` (phase 1), then renames each over its
    ``checkpoint.pt`` (phase 2).  :meth:`load` reads what an interruption left: if every run has a
    ``.next`` of one epoch, or its ``checkpoint.pt`` already holds that epoch (phase 2 was
    interrupted), the commit is finished; otherwise (phase 1) the ``.next`` files are discarded.
    :meth:`settle` carries that out once the folders are locked.
    """

    def __init__(self, paths: list[Path], kind: str):
        self.paths = [Path(p) for p in paths]
        self.kind = kind
        self.epochs: list[int | None] = [None] * len(self.paths)  # the epoch each checkpoint.pt holds
        self._committing: int | None = None  # the epoch phase 2 is renaming
        self._plan: list[tuple[Path, Path | None]] = []  # (.next, rename target or None: remove)

    def load(self, cfgs: list, required: Mapping[str, type | tuple] | None = None) -> list[dict | None]:
        """Each run's checkpoint to resume from (None: none), an interrupted commit settled on paper."""
        nexts = [next_path(p) for p in self.paths]
        current = [load_checkpoint_if_any(p, c, self.kind, required) for p, c in zip(self.paths, cfgs)]
        pending = {i: load_checkpoint_if_any(n, c, self.kind, required) for i, (n, c) in enumerate(zip(nexts, cfgs))}
        pending = {i: ckpt for i, ckpt in pending.items() if ckpt is not None}
        ckpts = current
        if pending:
            epochs = {int(ckpt["epoch"]) for ckpt in pending.values()}
            epoch = epochs.pop() if len(epochs) == 1 else None
            written = all(
                i in pending or (ckpt is not None and ckpt["epoch"] == epoch) for i, ckpt in enumerate(current)
            )
            if epoch is not None and written:  # phase 2 was interrupted: finish it
                ckpts = [pending.get(i, ckpt) for i, ckpt in enumerate(current)]
                self._plan = [(nexts[i], self.paths[i]) for i in sorted(pending)]
            else:  # phase 1 was interrupted: that epoch was never committed
                self._plan = [(nexts[i], None) for i in sorted(pending)]
        self.epochs = [None if ckpt is None else int(ckpt["epoch"]) for ckpt in ckpts]
        return ckpts

    def settle(self) -> None:
        """Finish or discard the commit :meth:`load` found interrupted (hold the folders' locks)."""
        for src, dst in self._plan:
            if dst is None:
                remove_file(src)
            else:
                commit_file(src, dst)
        self._plan = []

    def save(self, cfgs: list, states: list[dict[str, Any]]) -> None:
        """Commit one checkpoint per run (``state["epoch"]`` the same in all), all or none."""
        if len(self.paths) == 1:  # one atomic write is all or none already
            save_checkpoint(self.paths[0], cfgs[0], self.kind, states[0])
            self.epochs = [int(states[0]["epoch"])]
            return
        for path, cfg, state in zip(self.paths, cfgs, states):
            save_checkpoint(next_path(path), cfg, self.kind, state)
        self._committing = int(states[0]["epoch"])
        for path in self.paths:
            commit_file(next_path(path), path)
        self.epochs = [self._committing] * len(self.paths)
        self._committing = None

    def committed(self) -> list[int | None]:
        """The epoch each run's ``checkpoint.pt`` holds now (read from the files mid-commit)."""
        if self._committing is None:
            return list(self.epochs)
        return [e if next_path(p).exists() else self._committing for p, e in zip(self.paths, self.epochs)]

    def pending(self) -> int | None:
        """The epoch written for every run but not yet renamed over every ``checkpoint.pt`` (None: none)."""
        if self._committing is None or not any(next_path(p).exists() for p in self.paths):
            return None
        return self._committing
