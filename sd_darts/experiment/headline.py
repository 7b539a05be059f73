"""The DVC metrics of the pipeline: a few headline numbers per run and one summary per profile.

``metrics/headline/<profile>/`` holds numbers only (what ``dvc metrics show`` and ``dvc exp
show`` print); the descriptive records beside the runs (``summary.json``, ``metrics.json``, ...)
stay plain outputs that the report reads.  ``dvc.yaml`` declares the folder ``metrics/headline``
as its metrics, so a profile that has not run (the paper profile in a fresh clone) is no error:
the committed files of both profiles are what is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..spaces.nb201.benchmark import COLUMNS
from ..utils import files
from .layout import Layout, RunPaths

#: Run kinds with a headline file of their own.
RUN_KINDS = ("search", "nb201_search", "train_cifar", "train_imagenet")


def _numbers(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def search_headline(summary: dict[str, Any], curves: pd.DataFrame | None) -> dict[str, float]:
    """Supernet validation accuracy (eval mode, alpha half), skip connections, final eigenvalue."""
    from ..report import final_eigenvalue

    return _numbers(
        {
            "supernet_valid_acc": float(summary["supernet_valid_acc"]),
            "skip_connections": summary.get("num_skip_connect"),
            "eigenvalue": final_eigenvalue(curves),
        }
    )


def train_headline(metrics: dict[str, Any]) -> dict[str, float]:
    """Top-1 test error after the final epoch (the paper's number)."""
    return {"test_error": float(metrics["test_error"])}


def run_headline(kind: str, folder: Path) -> dict[str, float]:
    """The headline numbers of a collected run folder ``metrics/<profile>/<kind>/<run>``."""
    curves = folder / "curves.tsv"
    if kind in ("search", "nb201_search"):
        table = pd.read_csv(curves, sep="\t") if curves.is_file() else None
        return search_headline(files.read_json(folder / "summary.json", what="search summary"), table)
    return train_headline(files.read_json(folder / "metrics.json", what="training metrics"))


def write_run(layout: Layout, paths: RunPaths) -> None:
    """Write a collected run's headline file (runs of :data:`RUN_KINDS` only)."""
    if paths.kind in RUN_KINDS:
        files.write_json(layout.headline_run(paths), run_headline(paths.kind, paths.metrics))


def genotype_headline(stats: dict[str, Any]) -> dict[str, Any]:
    """Parameters and mult-adds (millions) of the selected and the paper's genotype, per network."""
    return {
        net: {
            which: {k: float(stats[which][net][k]) for k in ("params_m", "mult_adds_m")}
            for which in ("selected", "paper")
        }
        for net in ("cifar", "imagenet")
    }


def nb201_headline(query: dict[str, Any]) -> dict[str, Any]:
    """The Table 4 columns (mean and std over search seeds); nothing when the query did not run."""
    row = query.get("row") or {}
    return {
        c.key: {"mean": float(row[c.key]["mean"]), "std": float(row[c.key]["std"])} for c in COLUMNS if c.key in row
    }


def _mean_std(values: list[float]) -> dict[str, float]:
    from ..report import mean_std

    m, s, _ = mean_std(values)
    return _numbers({"mean": m, "std": s})


def summary(metrics) -> dict[str, Any]:
    """The report's headline numbers from a :class:`sd_darts.report.Metrics`: per search method the
    supernet validation accuracy, skip connections and final eigenvalue, per evaluated genotype
    the CIFAR-10 test error (mean, sample std, number of seeds), and how many runs finished."""
    out: dict[str, Any] = {"finished_runs": {kind: len(runs) for kind, runs in sorted(metrics.runs.items())}}
    by_method: dict[str, list[dict[str, float]]] = {}
    for run in metrics.searches:
        by_method.setdefault(run.summary["method"], []).append(search_headline(run.summary, run.curves))
    for method, rows in sorted(by_method.items()):
        keys = sorted({k for r in rows for k in r})
        out.setdefault("search", {})[method] = {k: _mean_std([r[k] for r in rows if k in r]) for k in keys}
    groups: dict[str, list[float]] = {}
    for run in metrics.train_cifar:
        groups.setdefault(run.ref.label, []).append(float(run.summary["test_error"]))
    for label, values in sorted(groups.items()):
        out.setdefault("train_cifar", {})[label] = {"test_error": _mean_std(values)}
    return out
