"""The paper's tables and figures, regenerated from a folder of collected run metrics.

:func:`build_report` reads the metrics root as a :class:`ReportSpec` describes it and writes the
tables, figures and a manifest; the files, the modules and the guarantees: docs/report.md.
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
