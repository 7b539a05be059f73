"""Shared body of the ``train-cifar`` and ``train-imagenet`` commands (:mod:`sd_darts.train`)."""

from __future__ import annotations

import argparse


def _config_class(name: str):
    from .. import train

    return getattr(train, name)


def register(parser: argparse.ArgumentParser, config_class: str, section: str) -> None:
    from ..config import add_arguments

    add_arguments(parser, _config_class(config_class), f"'{section}:'")


def run(args: argparse.Namespace, config_class: str, section: str) -> int:
    from ..config import resolve
    from ..train import report_line, run_training

    cfg = resolve(_config_class(config_class), section, args)
    result = run_training(cfg)
    if result.is_main:
        print(report_line(result))
    return 0
