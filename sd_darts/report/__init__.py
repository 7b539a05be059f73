"""The paper's tables and figures, regenerated from a folder of collected run metrics.

:func:`build_report` reads a *metrics folder* (small, text-only files that the pipeline
collects from every run: ``metrics/`` in the repository, committed to git) and a params file
(Table 1), and writes ``reports/``:

``README.md``                       every table and figure, the provenance of every run
``table1_hyperparameters.{md,csv}`` Table 1: the paper's values beside the params file's
``table2_cifar10.{md,csv}``         Table 2 (paper rows marked "paper") + reproduced rows
``table3_imagenet.{md,csv}``        Table 3, likewise
``table4_nb201.{md,csv}``           Table 4, likewise
``comparison.{md,csv}``             every reproduced number beside the paper's and the difference
``provenance.{md,csv}``             run, stage, seed, device, git revision of every run used
``fig2_hessian.png``                dominant Hessian eigenvalue per epoch, DARTS vs SD-DARTS
``fig4_cells.png``                  normal and reduction cells of the selected genotype
``fig5_warmup.png``                 accuracy vs warm-up epochs ξ (K = 1)
``fig6_window.png``                 accuracy vs time window K (ξ = 25)
``search_curves.png``               per-epoch search curves of every search run

Anything not run is written as "not run" with the reason; no number is ever invented.  The
output is byte-for-byte reproducible from the same inputs: runs are sorted, floats have fixed
formats, there are no timestamps, and PNGs are written by the Agg backend with fixed size,
dpi, style and no ``Software`` metadata (identical bytes need the same matplotlib/FreeType
versions, which the pinned environment provides).

Metrics folder layout (written by ``pipelines/``; every run folder has ``provenance.json``
``{"stage", "run", "device", "git_rev", "git_dirty", "command"}``):

``search/<method>-s<seed>/``            ``summary.json``, ``curves.tsv``, ``genotype.json``, ``config.yaml``
``genotype/``                           ``selected.json`` (genotype), ``selection.json`` (rule, candidates),
                                        ``stats.json`` (params / mult-adds of the evaluated genotypes)
``train_cifar/<genotype>-s<seed>/``     ``metrics.json``, ``curves.tsv``, ``config.yaml``
``train_imagenet/``                     ``status.json`` (``{"status": "not run", "reason"}``) or
                                        ``<genotype>-s<seed>/metrics.json`` ...
``nasbench201_search/s<seed>/``         as ``search/``
``nasbench201/query.json``              ``{"status": "ok" | "not run", "reason", "benchmark",
                                        "row": {column: {"mean", "std"}}, "per_seed": [{column: value}]}``
``ablation_warmup/xi<ξ>-s<seed>/``      ``point.json`` (``{"parameter", "value", "seed"}``), ``search/``, ``eval/``
``ablation_window/k<K>-s<seed>/``       likewise
"""

from __future__ import annotations

from .build import build_report, params_file_of
from .cells import fig4_cells
from .compare import comparison, provenance
from .figures import fig2_hessian, search_curves
from .fmt import NOT_RUN, fmt, fmt_pm, mean_std
from .read import Metrics, Run, expected_runs, load_metrics
from .tables import table1, table2, table3, table4

__all__ = [
    "NOT_RUN",
    "Run",
    "Metrics",
    "load_metrics",
    "expected_runs",
    "build_report",
    "params_file_of",
    "table1",
    "table2",
    "table3",
    "table4",
    "comparison",
    "provenance",
    "fig2_hessian",
    "fig4_cells",
    "search_curves",
    "fmt",
    "fmt_pm",
    "mean_std",
]
