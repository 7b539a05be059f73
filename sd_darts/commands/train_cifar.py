"""``sd-darts train-cifar``: train a searched genotype on CIFAR-10 from scratch (paper §4.2).

Defaults are the paper's (DARTS's) recipe; every setting is a flag or a key of the
``train_cifar:`` section of a ``--params`` file.  Rerunning the same command resumes from
``--out/checkpoint.pt``; under ``torchrun --nproc_per_node N`` it trains data-parallel with
the same global batch.  See :mod:`sd_darts.evaluation.train`.
"""

from __future__ import annotations

import argparse

from ..evaluation.recipes import TrainCifarConfig
from . import _training

NAME = "train-cifar"
HELP = "train a searched genotype from scratch on CIFAR-10 (paper §4.2; digits for smoke runs)"
SECTION = "train_cifar"


def register(parser: argparse.ArgumentParser) -> None:
    _training.register(parser, TrainCifarConfig, SECTION)


def run(args: argparse.Namespace) -> int:
    return _training.run(args, TrainCifarConfig, SECTION)
