"""``sd-darts pipeline run | submit | status | record | cancel``: the stale stages of the DVC pipeline run N
at a time on this machine (:mod:`sd_darts.experiment.local`, docs/pipeline.md) or as SLURM job arrays
with ``afterok`` dependencies (:mod:`sd_darts.experiment.submit`, docs/cluster.md)."""

from __future__ import annotations

NAME = "pipeline"
HELP = (
    "run the stale DVC stages here, N at a time (run --jobs N), or as SLURM job arrays (submit [--wait]), show "
    "them (status), record the completed ones in dvc.lock (record), cancel them"
)


def register(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    lr = sub.add_parser("run", help="run the stale stages (and those downstream) here, N at a time, and record them")
    lr.add_argument("--jobs", type=int, default=2, metavar="N", help="stages at once; each gets 1/N of the threads")
    s = sub.add_parser("submit", help="submit the stale stages (and those downstream) as job arrays")
    for a in (lr, s):
        a.add_argument("--stages", nargs="+", default=[], metavar="GLOB", help="only stale stages matching these")
        a.add_argument(
            "--single-item",
            action="store_true",
            help="as dvc repro -s: only the matching stages, not the stale stages upstream of them",
        )
    s.add_argument(
        "--wait", action="store_true", help="wait for the jobs, then record the completed stages in dvc.lock"
    )
    st = sub.add_parser("status", help="every job of the last submission: stage, job, state, elapsed, log")
    r = sub.add_parser("record", help="record the last submission's completed stages in dvc.lock (dvc commit)")
    c = sub.add_parser("cancel", help="cancel the jobs of the last submission")
    for a in (
        lr,
        s,
        st,
        r,
        c,
    ):  # DVC's stages read params.yaml: submit checks FILE is it, status/cancel pick its profile
        a.add_argument("--params", default="params.yaml", metavar="FILE", help="the profile's params file")


def run(args) -> int:
    from ..experiment import local, submit

    if args.action == "run":
        return local.run(args.params, args.stages, args.jobs, args.single_item)
    if args.action == "submit":
        return submit.submit(args.params, args.stages, args.wait, args.single_item)
    action = {"status": submit.status, "record": submit.record_last, "cancel": submit.cancel}[args.action]
    return action(args.params)
