"""The report: read every input, render every table and figure in memory, then write them."""

from __future__ import annotations

import os
from pathlib import Path

from ..paper import FIGURES
from .cells import baseline_cells, fig4_cells
from .compare import comparison, provenance
from .figures import ablation_figure, fig2_hessian, search_curves
from .fmt import NOT_RUN, csv_text, md_table
from .labels import stamp
from .methods import methods
from .output import check_output, write_output
from .read import Metrics, load_metrics
from .readme import figures_fixed, readme
from .spec import ReportSpec
from .tables import imagenet_status_text, nb201_reason, table1, table2, table3, table4

TABLES = (
    "table1_hyperparameters",
    "table2_cifar10",
    "table3_imagenet",
    "table4_nb201",
    "methods",
    "comparison",
    "provenance",
)
FIGURES_FILES = ("fig2_hessian.png", "fig4_cells.png", "fig5_warmup.png", "fig6_window.png", "search_curves.png")


#: Every file the report can make: the only names its manifest may make it replace or delete.
ALL_NAMES = tuple(
    sorted([f"{stem}.{ext}" for stem in TABLES for ext in ("md", "csv")] + [*FIGURES_FILES, "README.md"])
    + ["cells_darts.png", "search_curves_nb201.png"]
)


def ablation_runs(points) -> list:
    """The runs of ablation points (their searches and evaluations)."""
    return [r for p in points for r in (p.search, p.eval) if r is not None]


def output_names(metrics: Metrics) -> list[str]:
    """The files :func:`render` makes for ``metrics`` (known before anything is drawn)."""
    present = {
        "cells_darts.png": metrics.darts_genotype is not None,
        "search_curves_nb201.png": bool(metrics.nb201_searches),
    }
    return sorted(n for n in ALL_NAMES if present.get(n, True))


def render(metrics: Metrics, where: str) -> dict[str, bytes]:
    """Every file of the report (name → bytes); ``where``: the metrics folder as named in the README."""
    out: dict[str, bytes] = {}
    tables = {}
    frames = (table1(metrics.spec.table1), table2(metrics), table3(metrics), table4(metrics))
    for stem, df in zip(TABLES, (*frames, methods(metrics), comparison(metrics), provenance(metrics))):
        tables[stem] = md_table(df)
        out[f"{stem}.md"] = tables[stem].encode()
        out[f"{stem}.csv"] = csv_text(df).encode()

    k_fixed, xi_fixed = figures_fixed(metrics)
    sel_source = "no genotype selected"
    if metrics.selection:
        sel_source = f"the genotype selected from run {metrics.selection['selected']}"
    figures = {
        "fig2_hessian.png": fig2_hessian(metrics),
        "fig4_cells.png": fig4_cells(metrics.selected_genotype, sel_source, stamp(metrics, metrics.searches)),
        "fig5_warmup.png": ablation_figure(
            metrics.ablation_warmup,
            f"Fig. 5: effect of the warm-up ξ (K = {k_fixed})",
            "Warm-up epochs ξ",
            FIGURES["fig5"],
            stamp(metrics, ablation_runs(metrics.ablation_warmup)),
        ),
        "fig6_window.png": ablation_figure(
            metrics.ablation_window,
            f"Fig. 6: effect of the time window K (ξ = {xi_fixed})",
            "Time window K",
            FIGURES["fig6"],
            stamp(metrics, ablation_runs(metrics.ablation_window)),
        ),
        "search_curves.png": search_curves(
            metrics.searches, "Search curves (DARTS space)", stamp(metrics, metrics.searches)
        ),
    }
    if metrics.darts_genotype is not None:
        source = f"the genotype of run {metrics.selection['darts_baseline']}"
        figures["cells_darts.png"] = baseline_cells(metrics.darts_genotype, source, stamp(metrics, metrics.searches))
    if metrics.nb201_searches:
        figures["search_curves_nb201.png"] = search_curves(
            metrics.nb201_searches, "Search curves (NAS-Bench-201 space)", stamp(metrics, metrics.nb201_searches)
        )
    for name, (_, data) in figures.items():
        out[name] = data

    q = metrics.nb201_query or {}
    nb201 = f"ok ({q['benchmark']})" if q.get("status") == "ok" else nb201_reason(metrics)
    imagenet = "run" if metrics.train_imagenet else imagenet_status_text(metrics)
    status = {name: s for name, (s, _) in figures.items()}
    out["README.md"] = readme(metrics, where, tables, status, imagenet, nb201).encode()
    return out


def build_report(metrics_root: str | os.PathLike, out_dir: str | os.PathLike, spec: ReportSpec) -> list[Path]:
    """Regenerate every table and figure of ``spec`` from ``metrics_root`` into ``out_dir``.

    Every input is read and checked first; the output folder must be new, empty or an earlier
    report's (see :mod:`sd_darts.report.output`).  Returns the written report files, sorted
    (the manifest :data:`~sd_darts.report.output.MANIFEST` is written besides them).
    """
    metrics = load_metrics(metrics_root, spec)
    manifest = check_output(out_dir, output_names(metrics), known=ALL_NAMES)
    contents = render(metrics, Path(metrics_root).as_posix())
    if sorted(contents) != output_names(metrics):
        raise AssertionError(f"render made {sorted(contents)}, not the announced {output_names(metrics)}")
    return write_output(out_dir, contents, manifest)


__all__ = ["build_report", "render", "NOT_RUN"]
