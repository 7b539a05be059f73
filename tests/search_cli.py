"""Running ``sd-darts search`` from a test: a tiny two-epoch search on digits, in this process
or in a subprocess, and the checks of a one-line refusal (exit 2, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from support import ROOT

from sd_darts.cli import main

TINY_SEARCH = [
    "--dataset",
    "digits",
    "--image-size",
    "16",
    "--init-channels",
    "4",
    "--layers",
    "5",
    "--batch-size",
    "8",
]
TINY_SEARCH += ["--limit-samples", "16", "--device", "cpu", "--seed", "3", "--epochs", "2", "--warmup-epochs", "1"]


def snapshot(folder: Path) -> dict[str, bytes] | None:
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def one_step_search(capsys, out: Path) -> tuple[int, str]:
    return run_cli(
        capsys,
        "search",
        *TINY_SEARCH,
        "--out",
        str(out),
        "--epochs",
        "1",
        "--warmup-epochs",
        "0",
        "--max-steps-per-epoch",
        "1",
    )


def assert_one_line_refusal(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def spawn_search(out: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "sd_darts", "search", *TINY_SEARCH, "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(path: Path, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.2)
