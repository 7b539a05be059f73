"""Resumable checkpoints.

A checkpoint is a dict of tensors and plain values written atomically after every epoch
(``files.torch_save``: temp file + rename) and read with ``weights_only=True``.  It carries the
run's settings fingerprint (:func:`sd_darts.config.fingerprint_fields`): resuming with other
settings is refused with a message naming each setting that differs, never silently reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import config as config_mod
from .errors import UserError
from .files import torch_load, torch_save

FORMAT = "sd-darts-checkpoint-v1"


def save_checkpoint(path: str | Path, cfg, kind: str, state: dict[str, Any]) -> None:
    """Write ``state`` plus the settings fingerprint of ``cfg`` atomically to ``path``."""
    payload = {
        "format": FORMAT,
        "kind": kind,
        "settings": config_mod.fingerprint_fields(cfg),
        "fingerprint": config_mod.fingerprint(cfg),
        **state,
    }
    torch_save(path, payload)


def load_checkpoint_if_any(path: str | Path, cfg, kind: str) -> dict[str, Any] | None:
    """Return the checkpoint at ``path`` if it exists and was made with the same settings.

    Raises :class:`UserError` if the file is not an sd-darts checkpoint of this ``kind`` or
    was made with different settings.
    """
    path = Path(path)
    if not path.exists():
        return None
    ckpt = torch_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path} is not an sd-darts checkpoint; delete it or choose another --out")
    if ckpt.get("kind") != kind:
        raise UserError(f"{path} is a {ckpt.get('kind')} checkpoint, not a {kind} one; choose another --out")
    if ckpt.get("fingerprint") != config_mod.fingerprint(cfg):
        diffs = config_mod.diff_settings(ckpt.get("settings", {}), config_mod.fingerprint_fields(cfg))
        raise UserError(
            f"checkpoint {path} was made with different settings ({'; '.join(diffs) or 'unknown difference'}); "
            "rerun with the same settings to resume, or use a new --out"
        )
    return ckpt
