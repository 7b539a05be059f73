"""``sd-darts train-imagenet``: train a searched genotype on ILSVRC2012 (paper §4.3).

Defaults are the PC-DARTS recipe the paper follows; data come from a local folder laid out as
``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``.  Every setting is a flag or a key of the
``train_imagenet:`` section of a ``--params`` file.  Rerunning the same command resumes; under
``torchrun --nproc_per_node N`` it trains data-parallel with the same global batch (1024).
See :mod:`sd_darts.evaluation.train`.
"""

from __future__ import annotations

import argparse

from ..evaluation.recipes import TrainImageNetConfig
from . import _training

NAME = "train-imagenet"
HELP = "train a searched genotype from scratch on ImageNet from a local ILSVRC2012 folder (paper §4.3)"
SECTION = "train_imagenet"


def register(parser: argparse.ArgumentParser) -> None:
    _training.register(parser, TrainImageNetConfig, SECTION)


def run(args: argparse.Namespace) -> int:
    return _training.run(args, TrainImageNetConfig, SECTION)
