"""``sd-darts report``: regenerate a profile's tables and figures from its collected metrics."""

from __future__ import annotations

NAME = "report"
HELP = (
    "regenerate reports/<profile>/ (Tables 1-4, Figs. 2, 4, 5, 6, search curves) from metrics/<profile>/; "
    "byte-for-byte reproducible from the same inputs; writes only into a new or empty folder or over its "
    "own earlier report"
)


def register(parser) -> None:
    parser.add_argument(
        "--params",
        default="params.yaml",
        metavar="FILE",
        help="params file: its profile, the runs it makes and Table 1's settings (default: params.yaml)",
    )
    parser.add_argument("--metrics", metavar="DIR", help="metrics folder (default: metrics/<profile>)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: reports/<profile>): new, empty, or an earlier report's "
        "(files it did not write are never overwritten or deleted)",
    )


def run(args) -> int:
    from ..errors import UserError
    from ..experiment.layout import Layout
    from ..experiment.report_spec import report_spec
    from ..experiment.schema import read_params
    from ..report import build_report

    for flag, value in (("--metrics", args.metrics), ("--out", args.out)):
        if value is not None and value.strip() == "":
            raise UserError(f"{flag} is empty; name a folder or leave {flag} out for its default")
    p = read_params(args.params)
    layout = Layout(p.profile)
    metrics = layout.metrics if args.metrics is None else args.metrics
    out = layout.reports if args.out is None else args.out
    written = build_report(metrics, out, report_spec(p))
    print(f"report: {len(written)} files in {out} (profile {p.profile}, from {metrics})")
    return 0
