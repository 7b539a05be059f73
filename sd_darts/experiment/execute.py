"""Running one search or one training for a stage: reuse a finished run folder of the same
identity, resume an interrupted one, or start afresh; then record its provenance and collect
its small outputs into ``metrics/``."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..evaluation.train import run_training
from ..search.loop import run_search, run_search_seeds
from ..utils import files
from ..utils.runtime import pick_device
from . import headline, slurm
from .deps import REPO
from .layout import SEARCH_FILES, TRAIN_FILES, Layout, RunPaths
from .runs import collect_run, command_line, finish_run, prepare_run_dir, provenance, run_identity
from .schema import Params
from .settings import stacked_search_settings

log = logging.getLogger("sd_darts.experiment")


def plot_curves(curves_tsv: str) -> str:
    """A run's ``curves.tsv`` text for ``dvc plots``: epochs 1-based, as the report counts them."""
    header, *rows = curves_tsv.splitlines()
    assert header.split("\t")[0] == "epoch", header
    shifted = [f"{int(r.split(chr(9), 1)[0]) + 1}\t{r.split(chr(9), 1)[1]}" for r in rows]
    return "\n".join([header, *shifted]) + "\n"


#: The columns that :func:`overlay_curves` puts before a run's own: what ``dvc plots``' overlay
#: template (``.dvc/plots/overlay.json``) colours (``series``: the method or genotype) and dashes by.
OVERLAY_COLUMNS = ("series", "seed", "run")


def overlay_curves(runs: list[tuple[str, int, str, str]]) -> str:
    """One TSV of several runs' plotted curves, ``(series, seed, run name, curves TSV text)`` each:
    a row per run and epoch, :data:`OVERLAY_COLUMNS` first, then the union of the runs' columns
    (a column a run lacks is empty in its rows); values are copied verbatim."""
    tables = []
    columns: list[str] = []
    for series, seed, name, text in runs:
        header, *rows = text.splitlines()
        fields = header.split("\t")
        columns += [f for f in fields if f not in columns]
        tables.append(((series, str(seed), name), [dict(zip(fields, r.split("\t"), strict=True)) for r in rows]))
    lines = ["\t".join((*OVERLAY_COLUMNS, *columns))]
    for head, rows in tables:
        lines += ["\t".join((*head, *(row.get(c, "") for c in columns))) for row in rows]
    return "\n".join(lines) + "\n"


def publish_curves(p: Params, paths: RunPaths) -> None:
    """Copy a collected run's ``curves.tsv`` (1-based epochs) where ``dvc plots`` finds the curves of its kind."""
    files.write_text(Layout(p.profile).curves(paths), plot_curves((paths.metrics / "curves.tsv").read_text()))


def search_once(p: Params, cfg, paths: RunPaths, stage: str) -> dict[str, Any]:
    """Run (resume, or reuse) one search and collect it; returns its summary."""
    identity = run_identity(cfg, "sd_darts.search.loop")
    if prepare_run_dir(paths.run, identity) == "reuse":
        summary = files.read_json(paths.run / "summary.json", what="search summary")
    else:
        summary = run_search(cfg).summary
        prov = provenance(p.profile, stage, paths.run, str(pick_device(cfg.device)), command_line("search", cfg))
        finish_run(paths.run, identity, prov)
    collect_run(paths.run, paths.metrics, SEARCH_FILES)
    headline.write_run(Layout(p.profile), paths)
    return summary


def search_stacked_once(p: Params, method: str, seed: int, stage: str) -> dict[str, Any]:
    """Seed ``seed`` of ``method`` with ``pipeline.stack_search_seeds``: the first stage of the method
    to run trains every seed of ``seeds.search`` at once (:mod:`sd_darts.search.loop`) into their own
    run folders; the other stages find theirs finished and reuse them.  Returns this seed's summary."""
    group, cfgs = stacked_search_settings(p, method)
    layout = Layout(p.profile)
    paths = [layout.search(method, c.seed) for c in cfgs]
    # Stacked results equal single-seed ones only up to float rounding: their own identity.
    identities = [dict(run_identity(c, "sd_darts.search.loop"), stacked_seeds=list(group.seeds)) for c in cfgs]
    states = [prepare_run_dir(pp.run, ident) for pp, ident in zip(paths, identities)]
    if "fresh" in states and any((pp.run / "checkpoint.pt").is_file() for pp in paths):
        # All seeds resume from one epoch or none does: a lost folder restarts the group.
        log.warning("%s: some seeds of the stacked search have a checkpoint and some not; restarting them all", stage)
        for pp in paths:
            shutil.rmtree(pp.run)
        states = [prepare_run_dir(pp.run, ident) for pp, ident in zip(paths, identities)]
    if any(state != "reuse" for state in states):
        run_search_seeds(group)
        device = str(pick_device(group.device))
        for pp, ident in zip(paths, identities):
            prov = provenance(
                p.profile, stage, pp.run, device, command_line("search", group), stacked_seeds=group.seeds
            )
            finish_run(pp.run, ident, prov)
    own = paths[[c.seed for c in cfgs].index(seed)]
    collect_run(own.run, own.metrics, SEARCH_FILES)
    headline.write_run(layout, own)
    return files.read_json(own.run / "summary.json", what="search summary")


def train_once(
    p: Params, cfg, paths: RunPaths, stage: str, command: str, nproc: int = 1, nodes: int = 1
) -> dict[str, Any]:
    """Run (resume, or reuse) one training and collect it; returns its metrics.

    ``nproc`` > 1 runs the command data-parallel under ``torchrun --standalone`` (one process
    per GPU) instead of in this process; ``nodes`` > 1 (inside a SLURM job) one such torchrun
    per node, started by ``srun``."""
    line = command_line(command, cfg)
    args = line.split(" ", 1)[1]
    distributed = nodes > 1 or nproc > 1
    if distributed:  # as the provenance names the launch
        how = f"srun --ntasks={nodes} torchrun --nnodes {nodes}" if nodes > 1 else "torchrun --standalone"
        line = f"{how} --nproc_per_node {nproc} -m sd_darts {args}"
    identity = run_identity(cfg, "sd_darts.evaluation.train")
    if prepare_run_dir(paths.run, identity) == "reuse":
        metrics = files.read_json(paths.run / "metrics.json", what="training metrics")
    else:
        if distributed:
            standalone = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
            launch = slurm.torchrun_per_node(nodes, nproc) if nodes > 1 else standalone
            argv = [*launch, "-m", "sd_darts", *shlex.split(args)]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
            if subprocess.run(argv, env=env).returncode != 0:
                raise UserError(
                    f"{stage}: the distributed run failed ({line}); its checkpoint is kept, rerun to resume"
                )
            metrics = files.read_json(Path(cfg.out) / "metrics.json", what="training metrics")
        else:
            metrics = run_training(cfg).metrics
        finish_run(paths.run, identity, provenance(p.profile, stage, paths.run, str(pick_device(cfg.device)), line))
    collect_run(paths.run, paths.metrics, TRAIN_FILES)
    headline.write_run(Layout(p.profile), paths)
    return metrics


def not_run(p: Params, paths: RunPaths | None, status_file: Path, reason: str) -> None:
    """Record that a stage's runs were not made, and why (the report says "not run")."""
    files.write_json(status_file, {"status": "not run", "reason": reason, "profile": p.profile})
    if paths is not None:  # a persisted run folder is a stage output: it must exist
        files.write_json(paths.run / "status.json", {"status": "not run", "reason": reason})
