"""DVC stage ``train_cifar@<genotype>-<seed>``: train one evaluation network on CIFAR-10
(Table 2).  ``<genotype>`` is ``selected`` (from the genotype stage) or ``paper`` (the paper's
Fig. 4 cells); settings from the ``train_cifar`` section.  The run folder is persisted and
resumed; its small outputs are collected into the profile's metrics.
"""

from __future__ import annotations

import sys

from ..execute import publish_curves, train_once
from ..layout import Layout
from ..schema import EVAL_GENOTYPES
from ..settings import eval_settings
from ..stage import stage


def configure(ap) -> None:
    ap.add_argument("--genotype", required=True, choices=EVAL_GENOTYPES)
    ap.add_argument("--seed", type=int, required=True)


@stage(configure)
def main(p, args) -> int:
    paths = Layout(p.profile).train_cifar(args.genotype, args.seed)
    metrics = train_once(
        p, eval_settings(p, args.genotype, args.seed), paths, f"train_cifar@{args.genotype}-{args.seed}", "train-cifar"
    )
    publish_curves(p, paths)
    print(f"train_cifar {paths.name}: test error {metrics['test_error']:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
