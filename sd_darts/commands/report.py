"""``sd-darts report``: regenerate the paper's tables and figures from collected metrics."""

from __future__ import annotations

NAME = "report"
HELP = (
    "regenerate reports/ (Tables 1-4, Figs. 2, 4, 5, 6, search curves) from a metrics folder; "
    "byte-for-byte reproducible from the same inputs; writes only into a new or empty folder or "
    "over its own earlier report"
)


def register(parser) -> None:
    parser.add_argument(
        "--metrics",
        default="metrics",
        metavar="DIR",
        help="metrics folder collected by the pipeline (default: metrics)",
    )
    parser.add_argument(
        "--params",
        default="params.yaml",
        metavar="FILE",
        help="params file that says which runs to report and fills Table 1 (default: params.yaml); 'auto': "
        "the file the metrics' runs record in their provenance (e.g. params-smoke.yaml)",
    )
    parser.add_argument(
        "--out",
        default="reports",
        metavar="DIR",
        help="output folder (default: reports): new, empty, or an earlier report's (files it did not write "
        "are never overwritten or deleted)",
    )


def run(args) -> int:
    from ..report import build_report
    from ..report.from_params import params_file_of, spec_from_params

    params = params_file_of(args.metrics) if args.params == "auto" else args.params
    written = build_report(args.metrics, args.out, spec_from_params(params, args.metrics))
    print(f"report: {len(written)} files in {args.out} (params: {params})")
    return 0
