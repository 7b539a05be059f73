"""DVC stages ``ablation_warmup@<ξ>-<seed>`` (Fig. 5) and ``ablation_window@<K>-<seed>`` (Fig. 6).

One point = an SD-DARTS search with the swept setting (warm-up ξ with K =
``ablation.warmup_window``, or window K with ξ = ``ablation.window_warmup_epochs``; other
settings from ``search`` with ``ablation.search`` on top), then the CIFAR-10 evaluation of its
genotype (``train_cifar`` with ``ablation.train_cifar`` on top).  Run folder
``runs/ablation_<kind>/<p><value>-s<seed>/{search,eval}`` (persisted, resumed); collected
into ``metrics/ablation_<kind>/<p><value>-s<seed>/`` with ``point.json``.
"""

from __future__ import annotations

import argparse
import json

import _common

PREFIX = {"warmup": "xi", "window": "k"}
SWEPT = {"warmup": "warmup_epochs", "window": "window"}


@_common.entry_point
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kind", required=True, choices=sorted(PREFIX))
    ap.add_argument("--value", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args()
    p = _common.params()
    from sd_darts.commands.check_params import ablation_configs

    name = f"{PREFIX[args.kind]}{args.value}-s{args.seed}"
    run_dir = f"runs/ablation_{args.kind}/{name}"
    scfg, tcfg = ablation_configs(p, args.kind, args.value, args.seed, run_dir)
    dest = _common.METRICS / f"ablation_{args.kind}" / name
    stage = f"ablation_{args.kind}@{args.value}-{args.seed}"
    summary = _common.run_search(scfg, stage, dest / "search")
    metrics = _common.run_train(tcfg, stage, dest / "eval", "train-cifar")
    point = {"parameter": SWEPT[args.kind], "value": args.value, "seed": args.seed}
    (dest / "point.json").write_text(json.dumps(point, indent=2, sort_keys=True) + "\n")
    print(f"{stage}: supernet valid acc {summary['final_valid_acc']:.2f}%, test error {metrics['test_error']:.2f}%")
    return 0


if __name__ == "__main__":
    main()
