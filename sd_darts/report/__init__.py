"""The paper's tables and figures, regenerated from a folder of collected run metrics.

:func:`build_report` reads the *metrics root* (small text files the pipeline collects from
every run) as a :class:`ReportSpec` describes it (which runs, where; the report knows nothing of
params files or of the pipeline's folder names) and writes into the output folder:

``README.md``                       every table and figure, the provenance of every run
``table1_hyperparameters.{md,csv}`` Table 1: the paper's values beside the runs' settings
``table2_cifar10.{md,csv}``         Table 2 (paper rows marked "paper") + reproduced rows
``table3_imagenet.{md,csv}``        Table 3, likewise
``table4_nb201.{md,csv}``           Table 4, likewise
``methods.{md,csv}``                DARTS vs SD-DARTS as measured, the dataset's published results quoted
``comparison.{md,csv}``             every reproduced number beside the paper's and the difference
``provenance.{md,csv}``             stage, run, seed, device, git revision, environment of every run
``fig2_hessian.png``                dominant Hessian eigenvalue per epoch, DARTS vs SD-DARTS
``fig4_cells.png``                  normal and reduction cells of the selected genotype
``fig5_warmup.png``                 accuracy vs warm-up epochs ξ (K fixed)
``fig6_window.png``                 accuracy vs time window K (ξ fixed)
``cells_darts.png``                 cells of the DARTS baseline (when the genotype stage chose one)
``search_curves.png``               per-epoch search curves of every search run
``search_curves_nb201.png``         likewise for the NAS-Bench-201 searches (when there are any)
``.sd-darts-report.json``           the manifest: every file above with its SHA-256

Anything not run is written as "not run" with the reason; no number is ever invented.  A run
of another profile (its ``provenance.json``) is never shown as this profile's.  The output is
byte-for-byte reproducible from the same inputs: runs are sorted, floats have fixed formats,
there are no timestamps, and PNGs are written by the Agg backend with fixed size, dpi, style
and no ``Software`` metadata (identical bytes need the same matplotlib/FreeType versions, which
the pinned environment provides).

Modules: :mod:`.spec` (what to read), :mod:`.schema` (one input file, checked), :mod:`.read`
(the metrics tree), :mod:`.fmt` (numbers), :mod:`.tables` (Tables 1-4), :mod:`.compare`
(comparison, provenance), :mod:`.figures` and :mod:`.cells` (figures), :mod:`.readme`,
:mod:`.output` (manifest, staging) and :mod:`.build` (:func:`build_report`).  The spec of a
params file comes from the experiment layer (:func:`sd_darts.experiment.report_spec.report_spec`).
"""

from __future__ import annotations

from .build import build_report, render
from .fmt import NOT_RUN, fmt, fmt_pm, mean_std
from .output import MANIFEST
from .read import Metrics, Run, final_eigenvalue, load_metrics
from .spec import KINDS, ReportSpec, RunRef

__all__ = [
    "KINDS",
    "MANIFEST",
    "NOT_RUN",
    "Metrics",
    "ReportSpec",
    "Run",
    "RunRef",
    "build_report",
    "final_eigenvalue",
    "fmt",
    "fmt_pm",
    "load_metrics",
    "mean_std",
    "render",
]
