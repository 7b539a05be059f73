"""``sd-darts pipeline submit | status | cancel``: the stale stages of the DVC pipeline as SLURM job
arrays with ``afterok`` dependencies (:mod:`sd_darts.experiment.submit`, docs/cluster.md)."""

from __future__ import annotations

NAME = "pipeline"
HELP = "run the stale DVC stages as SLURM job arrays (submit [--wait]), show them (status), cancel them"


def register(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    s = sub.add_parser("submit", help="submit the stale stages (and those downstream) as job arrays")
    s.add_argument("--stages", nargs="+", default=[], metavar="GLOB", help="only stale stages matching these")
    s.add_argument(
        "--wait", action="store_true", help="wait for the jobs, then record the completed stages in dvc.lock"
    )
    sub.add_parser("status", help="every job of the last submission: stage, job, state, elapsed, log")
    sub.add_parser("cancel", help="cancel the jobs of the last submission")


def run(args) -> int:
    from ..experiment import submit

    if args.action == "submit":
        return submit.submit("params.yaml", args.stages, args.wait)
    return submit.status("params.yaml") if args.action == "status" else submit.cancel("params.yaml")
