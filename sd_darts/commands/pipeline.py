"""``sd-darts pipeline submit | status | record | cancel``: the stale stages of the DVC pipeline as SLURM job
arrays with ``afterok`` dependencies (:mod:`sd_darts.experiment.submit`, docs/cluster.md)."""

from __future__ import annotations

NAME = "pipeline"
HELP = (
    "run the stale DVC stages as SLURM job arrays (submit [--wait]), show them (status), record the completed "
    "ones in dvc.lock (record), cancel them"
)


def register(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    s = sub.add_parser("submit", help="submit the stale stages (and those downstream) as job arrays")
    s.add_argument("--stages", nargs="+", default=[], metavar="GLOB", help="only stale stages matching these")
    s.add_argument(
        "--wait", action="store_true", help="wait for the jobs, then record the completed stages in dvc.lock"
    )
    st = sub.add_parser("status", help="every job of the last submission: stage, job, state, elapsed, log")
    r = sub.add_parser("record", help="record the last submission's completed stages in dvc.lock (dvc commit)")
    c = sub.add_parser("cancel", help="cancel the jobs of the last submission")
    for a in (s, st, r, c):  # DVC's stages read params.yaml: submit checks FILE is it, status/cancel pick its profile
        a.add_argument("--params", default="params.yaml", metavar="FILE", help="the profile's params file")


def run(args) -> int:
    from ..experiment import submit

    if args.action == "submit":
        return submit.submit(args.params, args.stages, args.wait)
    action = {"status": submit.status, "record": submit.record_last, "cancel": submit.cancel}[args.action]
    return action(args.params)
