"""DVC stage ``train_cifar@<genotype>-<seed>``: train one evaluation network on CIFAR-10.

``<genotype>`` is ``selected`` (from the genotype stage) or ``paper`` (the paper's Fig. 4
cells); settings from the ``train_cifar`` section.  Run folder ``runs/train_cifar/<genotype>-s<seed>``
(persisted, resumed); collected into ``metrics/train_cifar/<genotype>-s<seed>``.
"""

from __future__ import annotations

import argparse

import _common


@_common.entry_point
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--genotype", required=True, choices=("selected", "paper"))
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args()
    p = _common.params()
    from sd_darts.commands.check_params import train_cifar_config

    name = f"{args.genotype}-s{args.seed}"
    genotype_file = (_common.METRICS / "genotype" / f"{args.genotype}.json").as_posix()
    cfg = train_cifar_config(p, genotype_file, args.seed, f"runs/train_cifar/{name}")
    metrics = _common.run_train(
        cfg, f"train_cifar@{args.genotype}-{args.seed}", _common.METRICS / "train_cifar" / name, "train-cifar"
    )
    print(f"train_cifar {name}: test error {metrics['test_error']:.2f}%")
    return 0


if __name__ == "__main__":
    main()
