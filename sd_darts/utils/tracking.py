"""Per-epoch metric tracking with DVCLive, shared by the search and the training recipes.

``dvclive/`` in a run's ``--out`` holds ``metrics.json`` (the last epoch) and
``plots/metrics/<name>.tsv`` (one row per epoch), which ``dvc plots`` and the report read.
On resume the folder is rebuilt from the history stored in the checkpoint, so it always
holds exactly the checkpointed epochs, whatever moment an earlier run was interrupted at.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("sd_darts.utils.tracking")


class _NoLive:
    """Stands in for DVCLive when it is not installed (``pip install sd-darts[pipeline]``): the
    per-epoch history is still in the checkpoint and the run's summary; only ``dvclive/`` is missing."""

    step = 0

    def log_metric(self, name, value) -> None:
        pass

    def next_step(self) -> None:
        pass

    def end(self) -> None:
        pass


def open_live(path: str | Path):
    """A DVCLive logger for ``path`` that never creates a DVC repository (or a stand-in
    that logs nothing when DVCLive is not installed).

    Outside a DVC stage, ``dvclive.Live`` runs ``dvc init`` in the enclosing git repository
    when it finds no DVC repository there (a side effect on the user's repository that a
    command must not have).  We use neither ``dvc.yaml`` generation nor experiment saving,
    so outside a stage the DVC integration is skipped; inside ``dvc repro`` /
    ``dvc exp run`` (``DVC_ROOT`` set) DVCLive behaves as usual.
    """
    try:
        from dvclive import Live
    except ImportError:
        log.warning("dvclive is not installed: no per-epoch metrics in %s (pip install 'sd-darts[pipeline]')", path)
        return _NoLive()

    class _Live(Live):
        def _init_dvc(self):
            if os.getenv("DVC_ROOT"):
                return super()._init_dvc()
            self._dvc_file = "dvc.yaml"

    return _Live(str(path), save_dvc_exp=False, dvcyaml=None, report=None)


def log_epoch(live, epoch: int, metrics: dict, names: Iterable[str] | None = None) -> None:
    """Log one epoch's metrics at step ``epoch`` (``names`` restricts and orders them)."""
    live.step = int(epoch)
    for name in names if names is not None else [k for k in metrics if k != "epoch"]:
        if name in metrics:
            live.log_metric(name, metrics[name])
    live.next_step()


def replay_live(path: str | Path, history: list[dict], names: Iterable[str] | None = None):
    """Open a fresh DVCLive folder at ``path`` holding exactly the epochs of ``history``."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    live = open_live(path)
    names = list(names) if names is not None else None
    for row in history:
        log_epoch(live, row["epoch"], row, names)
    return live
