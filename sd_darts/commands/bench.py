"""``sd-darts bench``: run the benchmark scripts (here or in the Docker image) and write
``reports/benchmarks.{md,csv}`` (:mod:`sd_darts.tools.bench`)."""

from __future__ import annotations

import argparse
import shlex
import sys

NAME = "bench"
HELP = "run the benchmarks of benchmarks/ (here or, with --docker, in the image) and write reports/benchmarks.md"


def register(parser: argparse.ArgumentParser) -> None:
    from ..tools.container_spec import DEFAULT_IMAGE

    parser.add_argument(
        "--device", default="auto", help="device of every benchmark: auto, cpu, cuda, cuda:1 (default: auto)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CPU sizes, a few steps: the search step at the CPU target sizes of docs/speed.md, tiny training steps; only what has them",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this script (e.g. search_step); repeatable",
    )
    parser.add_argument("--docker", action="store_true", help="run each benchmark in the Docker image")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"image for --docker (default: {DEFAULT_IMAGE})")
    parser.add_argument("--gpus", default=None, help="GPUs for --docker (default: all when --device is cuda)")
    parser.add_argument(
        "--out", default=None, help="report file, the CSV next to it (default: reports/benchmarks.md in the checkout)"
    )
    parser.add_argument("--checkout", default=None, help="the sd-darts checkout (default: the git top level here)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..tools.bench import bench
    from ..tools.container_spec import find_checkout

    root = Path(args.checkout).resolve() if args.checkout else find_checkout()
    out = Path(args.out) if args.out else root / "reports" / "benchmarks.md"
    rows = bench(
        root,
        out if out.is_absolute() else Path.cwd() / out,
        device=args.device,
        quick=args.quick,
        only=args.only,
        docker=args.docker,
        image=args.image,
        gpus=args.gpus,
        command=shlex.join(["sd-darts", "bench", *sys.argv[2:]]) if sys.argv[1:2] == ["bench"] else "sd-darts bench",
    )
    print(f"{len(rows)} measurements: {out} and {out.with_suffix('.csv')}")
    return 0
