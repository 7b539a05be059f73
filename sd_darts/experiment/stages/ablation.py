"""DVC stages ``ablation_warmup@<ξ>-<seed>`` (Fig. 5) and ``ablation_window@<K>-<seed>`` (Fig. 6).

One point = an SD-DARTS search with the swept setting (ξ with K = ``ablation.window_for_warmup_sweep``,
or K with ξ = ``ablation.warmup_epochs_for_window_sweep``; other settings from ``search`` with
``ablation.search`` on top), then the CIFAR-10 evaluation of its genotype (``train_cifar`` with
``ablation.train_cifar`` on top).  The point's run folder holds ``search/`` and ``eval/``
(persisted, resumed); both are collected with ``point.json``.
"""

from __future__ import annotations

import sys

from ...utils import files
from ..execute import search_once, train_once
from ..layout import ABLATIONS, Layout, RunPaths
from ..settings import ablation_settings
from ..stage import stage


def configure(ap) -> None:
    ap.add_argument("--kind", required=True, choices=sorted(ABLATIONS))
    ap.add_argument("--value", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)


@stage(configure)
def main(p, args) -> int:
    point = Layout(p.profile).ablation(args.kind, args.value, args.seed)
    scfg, tcfg = ablation_settings(p, args.kind, args.value, args.seed)
    stage_name = f"ablation_{args.kind}@{args.value}-{args.seed}"
    sub = {
        part: RunPaths(point.kind, f"{point.name}/{part}", point.run / part, point.metrics / part)
        for part in ("search", "eval")
    }
    summary = search_once(p, scfg, sub["search"], stage_name)
    metrics = train_once(p, tcfg, sub["eval"], stage_name, "train-cifar")
    files.write_json(
        point.metrics / "point.json", {"parameter": ABLATIONS[args.kind][1], "value": args.value, "seed": args.seed}
    )
    print(
        f"{stage_name}: supernet valid acc {summary['supernet_valid_acc']:.2f}%, test error {metrics['test_error']:.2f}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
