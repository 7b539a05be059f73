"""DVC stage ``report``: regenerate ``reports/<profile>/`` from the profile's metrics
(:mod:`sd_darts.report`, the runs of :func:`~sd_darts.experiment.report_spec.report_spec`)
and the profile's summary metric ``metrics/headline/<profile>/summary.json``."""

from __future__ import annotations

import sys

from ...report import build_report, load_metrics
from ...utils import files
from .. import headline
from ..layout import Layout
from ..report_spec import report_spec
from ..stage import stage


@stage()
def main(p, args) -> int:
    layout = Layout(p.profile)
    spec = report_spec(p)
    written = build_report(layout.metrics, layout.reports, spec)
    files.write_json(layout.headline / "summary.json", headline.summary(load_metrics(layout.metrics, spec)))
    print(f"report: {len(written)} files in {layout.reports}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
