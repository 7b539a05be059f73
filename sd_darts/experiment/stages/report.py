"""DVC stage ``report``: regenerate ``reports/<profile>/`` from the profile's metrics
(:mod:`sd_darts.report`, the runs of :func:`~sd_darts.experiment.report_spec.report_spec`)."""

from __future__ import annotations

from ...report import build_report
from ..layout import Layout
from ..report_spec import report_spec
from ..stage import stage


@stage()
def main(p, args) -> int:
    layout = Layout(p.profile)
    written = build_report(layout.metrics, layout.reports, report_spec(p))
    print(f"report: {len(written)} files in {layout.reports}/")
    return 0
