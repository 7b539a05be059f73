"""Shared body of the ``train-cifar`` and ``train-imagenet`` commands (:mod:`sd_darts.evaluation.train`)."""

from __future__ import annotations

import argparse

from ..utils.config import add_arguments, resolve


def register(parser: argparse.ArgumentParser, config_class: type, section: str) -> None:
    add_arguments(parser, config_class, f"'{section}:'")


def run(args: argparse.Namespace, config_class: type, section: str) -> int:
    from ..evaluation.train import report_line, run_training
    from ..experiment.settings import command_data

    base = command_data(args.params, section) if args.params else []
    result = run_training(resolve(config_class, section, args, base))
    if result.is_main:
        print(report_line(result))
    return 0
