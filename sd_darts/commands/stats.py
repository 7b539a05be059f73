"""``sd-darts stats``: parameters and mult-adds of a genotype's evaluation networks, beside
the paper's Table 2 (CIFAR-10, C=36, 20 cells) and Table 3 (ImageNet, C=48, 14 cells)
figures.  See :mod:`sd_darts.evaluation.stats` for the counting convention."""

from __future__ import annotations

import argparse
import json

NAME = "stats"
HELP = "parameter and mult-add counts of a genotype's CIFAR-10 and ImageNet networks (Tables 2 and 3)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--genotype",
        default="SD_DARTS",
        metavar="NAME|PATH",
        help="shipped genotype (DARTS_V1, DARTS_V2, SD_DARTS) or a genotype.json (default: SD_DARTS)",
    )
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.recipes import resolve_genotype
    from ..evaluation.stats import format_stats, genotype_stats

    genotype = resolve_genotype(args.genotype)
    stats = genotype_stats(genotype, name=args.genotype)
    print(json.dumps(stats, indent=2, sort_keys=True) if args.json else format_stats(stats))
    return 0
