"""Wall time of ``python -m sd_darts --help`` against ``python -c pass`` (median of a few runs).

Not a test (timings depend on the machine and its load): a measurement of the CLI start-up target,
``sd-darts --help`` under 1 s, which holds because no command imports torch before it runs.

    python benchmarks/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wall_times(argv: list[str], runs: int) -> list[float]:
    """Seconds of ``runs`` runs of ``argv`` (each must exit 0), after one unmeasured warm-up run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, check=True)
        if i:  # the first run warms the file cache
            times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each command (default: 5)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("python -m sd_darts --help", [sys.executable, "-m", "sd_darts", "--help"]),
    ]
    medians = {}
    for name, argv in rows:
        times = wall_times(argv, args.runs)
        medians[name] = statistics.median(times)
        print(
            f"{name:28s} median {medians[name]:.3f} s  (min {min(times):.3f}, max {max(times):.3f}, {args.runs} runs)"
        )
    over = medians["python -m sd_darts --help"] - medians["python -c pass"]
    print(f"{'sd-darts --help over python':28s} {over:+.3f} s  (target: sd-darts --help under 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
