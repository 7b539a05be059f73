"""Run the benchmark scripts of ``benchmarks/`` and report what they measured (``sd-darts bench``).

Speed is measured by scripts, never by tests: each runs as a subprocess, here or in the image,
and prints JSON rows (at least :data:`REQUIRED`); :data:`INVOCATIONS` lists them.  The report
format: docs/container.md, "Benchmarks in the image".
"""

from __future__ import annotations

import datetime
import io
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

#: Keys every measurement has.
REQUIRED = ("benchmark", "device", "ms_per_step_median", "peak_memory_bytes")


@dataclass(frozen=True)
class Invocation:
    """One run of a script of ``benchmarks/``: its arguments at full size (``args``) and at
    quick sizes for a CPU (``quick``; ``None``: not run with ``--quick``).  ``--device`` is added."""

    script: str
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return " ".join([Path(self.script).stem, *self.args])


#: The CPU sizes of docs/speed.md's measurements: 8 cells, C = 16, 32x32, batch 16.
_SEARCH_CPU = ("--batch-size", "16", "--init-channels", "16", "--layers", "8", "--image-size", "32")
_SEARCH_ROUNDS = ("--rounds", "3", "--warmup-steps", "1")
_STEPS_QUICK = ("--steps", "3", "--warmup-steps", "1")
_TRAIN_QUICK = ("--batch-size", "8", "--init-channels", "8", "--layers", "5")

#: What ``sd-darts bench`` runs: the search step of DARTS and SD-DARTS -- the reference path, the
#: fused path, four stacked seeds and the xautodl peer, in the DARTS and the NAS-Bench-201 spaces
#: (paper §3.3-3.4, Table 4; docs/speed.md) -- and the training step of the evaluation
#: networks (Tables 2 and 3); at the paper's sizes, or with ``--quick`` at the CPU sizes.
INVOCATIONS: tuple[Invocation, ...] = (
    Invocation("search_step.py", ("--space", "all", "--method", "sd-darts"), (*_SEARCH_CPU, *_SEARCH_ROUNDS)),
    Invocation("search_step.py", ("--space", "all", "--method", "darts"), (*_SEARCH_CPU, *_SEARCH_ROUNDS)),
    Invocation("train_step.py", ("--recipe", "cifar"), (*_TRAIN_QUICK, *_STEPS_QUICK)),
    Invocation("train_step.py", ("--recipe", "cifar", "--amp", "bf16", "--channels-last")),
    Invocation("train_step.py", ("--recipe", "imagenet", "--batch-size", "256", "--amp", "bf16", "--channels-last")),
)

#: A runner: (argv relative to the checkout, checkout) -> (exit code, stdout).
Runner = Callable[[Sequence[str], Path], tuple[int, str]]


def environment() -> dict[str, Any]:
    """The machine and versions of the process that runs the benchmarks."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cuda = torch.cuda.is_available()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpus": ", ".join(gpus) or "none",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "cudnn": str(torch.backends.cudnn.version()) if cuda else "none",
    }


def local_runner(argv: Sequence[str], root: Path) -> tuple[int, str]:
    """Run ``argv`` (its first word ``python``: this interpreter) in ``root``; stderr passes through."""
    argv = [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run(argv, cwd=root, stdout=subprocess.PIPE, text=True, env=env)
    return res.returncode, res.stdout


def docker_runner(client, image: str, gpus: str | None) -> Runner:
    """A runner that runs each command in ``image`` with the checkout mounted."""
    from . import container

    def run(argv: Sequence[str], root: Path) -> tuple[int, str]:
        out = io.BytesIO()
        code = container.run_in_image(
            argv, image=image, gpus=gpus, workdir=root, checkout=root, stdout=out, client=client
        )
        return code, out.getvalue().decode("utf-8", "replace")

    return run


def parse_output(text: str, what: str) -> list[dict[str, Any]]:
    """The measurements a script printed (one JSON object or a list of them), checked."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        first = text.strip().splitlines()[0][:80] if text.strip() else "nothing"
        raise UserError(f"{what} did not print JSON on stdout (it printed: {first!r}); fix the script") from None
    rows = data if isinstance(data, list) else [data]
    for row in rows:
        if not isinstance(row, dict):
            raise UserError(f"{what} printed JSON that is not an object or a list of objects; fix the script")
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise UserError(
                f"{what} printed a measurement without {', '.join(missing)}; every object needs {', '.join(REQUIRED)}"
            )
        for key in ("ms_per_step_median", "peak_memory_bytes"):
            if isinstance(row[key], bool) or not isinstance(row[key], (int, float)):
                raise UserError(f"{what} printed {key}={row[key]!r}; it must be a number")
    return rows


def select(invocations: Iterable[Invocation], quick: bool, only: Sequence[str] = ()) -> list[Invocation]:
    chosen = [inv for inv in invocations if not quick or inv.quick is not None]
    if only:
        chosen = [inv for inv in chosen if Path(inv.script).stem in only or inv.name in only]
        if not chosen:
            names = sorted({Path(inv.script).stem for inv in invocations})
            raise UserError(f"--only {' '.join(only)} matches no benchmark; choose from {', '.join(names)}")
    return chosen


def run_benchmarks(
    root: Path,
    invocations: Sequence[Invocation],
    device: str,
    quick: bool,
    runner: Runner,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> list[dict[str, Any]]:
    """Run every invocation whose script exists; return all measurements, in order.  A script
    that fails or prints malformed output is a one-line error (and nothing is reported)."""
    folder = root / "benchmarks"
    rows = []
    for inv in invocations:
        if not (folder / inv.script).is_file():
            log(f"bench: benchmarks/{inv.script} does not exist; skipped")
            continue
        args = [*inv.args, *(inv.quick or ())] if quick else list(inv.args)
        argv = ["python", f"benchmarks/{inv.script}", *args, "--device", device]
        log(f"bench: {' '.join(argv)}")
        code, out = runner(argv, root)
        what = f"benchmarks/{inv.script} ({inv.name})"
        if code != 0:
            raise UserError(f"{what} failed with exit code {code}; run '{' '.join(argv)}' to see why")
        rows += parse_output(out, what)
    return rows


def _git_rev(root: Path) -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    try:
        rev = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--", "sd_darts", "benchmarks")
    except OSError:
        return "unknown"
    return (rev or "unknown") + ("+dirty" if dirty else "")


def _mib(value: Any) -> float:
    return round(float(value) / 2**20, 1)


_SHOWN = ("benchmark", "variant", "device", "ms_per_step_median", "ms_per_step_mean", "peak_memory_bytes")
_HEADERS = {
    "ms_per_step_median": "ms/step (median)",
    "ms_per_step_mean": "ms/step (mean)",
    "peak_memory_bytes": "peak memory (MiB)",
    "images_per_second": "images/s",
}


def write_report(out: Path, rows: list[dict[str, Any]], env: dict[str, Any], produced_by: dict[str, str]) -> None:
    """``out`` (markdown) and the same name ``.csv``: one row per measurement.

    The CSV has every key of every measurement as a column, then the environment; the
    markdown shows the timing columns, and the other keys as ``settings`` (those equal to the
    environment's value, such as ``torch``, are said once under "Environment")."""
    import pandas as pd

    from ..utils.files import write_text

    if not rows:
        raise UserError("no benchmark ran, so there is nothing to report; check --only and benchmarks/")
    context = {**env, **produced_by}
    keys = list(dict.fromkeys(k for row in rows for k in row))
    keys += [k for k in context if k not in keys]
    table = pd.DataFrame([{**context, **row} for row in rows], columns=keys)
    shown = [k for k in _SHOWN if k in table.columns]
    if "images_per_second" in table.columns:
        shown.append("images_per_second")

    def settings(row: dict[str, Any]) -> str:
        rest = [(k, v) for k, v in row.items() if k not in shown and not (k in context and context[k] == v)]
        return ", ".join(f"{k}={v}" for k, v in rest)

    md = table[shown].copy()
    md["peak_memory_bytes"] = [_mib(v) for v in md["peak_memory_bytes"]]
    md["settings"] = [settings(row) for row in rows]
    md = md.rename(columns=_HEADERS).fillna("")
    env_table = pd.DataFrame({"": list(context), "value": [str(v) for v in context.values()]})
    text = "\n".join(
        [
            "# Benchmarks",
            "",
            f"Measured by `{produced_by['command']}` on {produced_by['date']} (git {produced_by['git_rev']}). "
            "Milliseconds per step: median and mean over the timed steps after warm-up; peak memory: "
            "CUDA's max allocated bytes on a GPU, the process's peak RSS on a CPU (`peak_memory_kind`). "
            "Measured by this package's `benchmarks/` scripts; nothing here is quoted from the paper.",
            "",
            "## Measurements",
            "",
            md.to_markdown(index=False),
            "",
            "## Environment",
            "",
            env_table.to_markdown(index=False),
            "",
        ]
    )
    write_text(out.with_suffix(".csv"), table.to_csv(index=False))
    write_text(out, text)


def bench(
    root: Path,
    out: Path,
    *,
    device: str = "auto",
    quick: bool = False,
    only: Sequence[str] = (),
    docker: bool = False,
    image: str | None = None,
    gpus: str | None = None,
    command: str = "sd-darts bench",
    invocations: Sequence[Invocation] | None = None,
) -> list[dict[str, Any]]:
    """Run the benchmarks (here, or in ``image`` with ``docker``) and write the report at ``out``."""
    from ..utils.files import check_writable_dir

    root = Path(root).resolve()
    if not (root / "benchmarks").is_dir():
        raise UserError(f"no benchmarks/ folder in {root}; run sd-darts bench in the sd-darts checkout")
    check_writable_dir(Path(out).parent, "--out", tree=False)
    table = INVOCATIONS if invocations is None else invocations
    listed = {inv.script for inv in table}
    for script in sorted((root / "benchmarks").glob("*.py")):
        if not script.name.startswith("_") and script.name not in listed:
            print(
                f"bench: benchmarks/{script.name} is not run (not in sd_darts.tools.bench.INVOCATIONS)", file=sys.stderr
            )
    chosen = select(table, quick, only)
    produced_by = {"image": "none (local)", "image_id": "none"}
    if docker:
        from . import container
        from .container_spec import DEFAULT_IMAGE

        image = image or DEFAULT_IMAGE
        if gpus is None and device.startswith("cuda"):
            gpus = "all"
        client = container.connect()
        # a missing image fails before any benchmark runs
        produced_by = {"image": image, "image_id": container.image_id(client, image)}
        runner = docker_runner(client, image, gpus)
    else:
        runner = local_runner
    rows = run_benchmarks(root, chosen, device, quick, runner)
    code, env_out = runner(["python", "-m", "sd_darts.tools.bench"], root)
    if code != 0:
        raise UserError("the environment probe (python -m sd_darts.tools.bench) failed; see its output above")
    env = json.loads(env_out)
    produced_by.update(
        {
            "git_rev": _git_rev(root),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command,
        }
    )
    write_report(Path(out), rows, env, produced_by)
    return rows


if __name__ == "__main__":  # pragma: no cover - run by bench() where the benchmarks run
    print(json.dumps(environment()))
