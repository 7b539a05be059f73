"""DVC stage ``report``: regenerate ``reports/`` from ``metrics/`` (``sd-darts report``)."""

from __future__ import annotations

import _common


@_common.entry_point
def main() -> int:
    _common.params()  # validate the whole file first
    from sd_darts.report import build_report

    written = build_report(_common.METRICS, _common.PARAMS_FILE, "reports")
    print(f"report: {len(written)} files in reports/")
    return 0


if __name__ == "__main__":
    main()
