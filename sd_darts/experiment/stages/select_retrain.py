"""DVC stage ``select_retrain@<seed>``: DARTS's selection protocol (DARTS §3.2), when
``pipeline.select_criterion`` is ``retrain``: train the genotype of one search of
``pipeline.select_method`` from scratch for a short schedule (``train_cifar`` with
``pipeline.select_retrain`` on top: 100 epochs) on the first part of the training set and
evaluate it on the held-out rest; the test set is never read.  With another criterion the
stage records "not run" and why.
"""

from __future__ import annotations

import sys

from ..execute import not_run, train_once
from ..layout import Layout
from ..settings import select_retrain_settings
from ..stage import stage


def configure(ap) -> None:
    ap.add_argument("--seed", type=int, required=True)


@stage(configure)
def main(p, args) -> int:
    paths = Layout(p.profile).select_retrain(args.seed)
    if p.pipeline.select_criterion != "retrain":
        paths.run.mkdir(parents=True, exist_ok=True)
        reason = f"pipeline.select_criterion is {p.pipeline.select_criterion}, not retrain"
        not_run(p, paths, paths.metrics / "status.json", reason)
        print(f"select_retrain {paths.name}: not run ({reason})")
        return 0
    cfg = select_retrain_settings(p, args.seed)
    metrics = train_once(p, cfg, paths, f"select_retrain@{args.seed}", "train-cifar")
    print(f"select_retrain {paths.name}: held-out error {metrics['test_error']:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
