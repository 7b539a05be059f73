"""Shared plumbing of the DVC stage entry points (``pipelines/*.py``).

The entry points are thin: they read and validate ``params.yaml`` (every section, so a bad
key fails in one line before any work), build the settings of one run with the builders of
:mod:`sd_darts.commands.check_params`, call the ``sd_darts`` library, and copy the run's small
text outputs into ``metrics/`` (committed to git, read by the report).  The library knows
nothing of DVC.

Resuming.  Run folders under ``runs/`` are ``persist: true`` DVC outputs, so an interrupted
stage finds its ``checkpoint.pt`` again and the library resumes it.  Before that,
:func:`prepare_run_dir` removes a run folder that cannot be resumed: one whose checkpoint was
made with other settings, another genotype or another version of the library code (its
:data:`STAMP` says which); the library's own settings fingerprint in the checkpoint guards
the same thing again.  A finished run with the same identity is reused, so a stage of
several runs (ablation point, ImageNet), interrupted after some of them, redoes none.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e`
    sys.path.insert(0, str(ROOT))

from sd_darts import config as cfgmod  # noqa: E402
from sd_darts import files  # noqa: E402
from sd_darts.commands.check_params import Params, load_params  # noqa: E402
from sd_darts.errors import UserError  # noqa: E402

log = logging.getLogger("sd_darts.pipeline")

PARAMS_FILE = os.environ.get("SD_DARTS_PARAMS", "params.yaml")
METRICS = Path("metrics")
RUNS = Path("runs")


def entry_point(fn: Callable[..., int | None]) -> Callable[[], None]:
    """Wrap a stage's ``main``: one-line errors with exit code 2, logging set up."""

    @functools.wraps(fn)
    def wrapper() -> None:
        from sd_darts.runtime import setup_logging

        setup_logging()
        stage = Path(sys.argv[0]).stem
        try:
            code = fn() or 0
        except UserError as exc:
            print(f"{stage}: error: {exc}", file=sys.stderr)
            code = exc.exit_code
        sys.exit(code)

    return wrapper


def params() -> Params:
    """The validated params file (``params.yaml``, or ``$SD_DARTS_PARAMS``)."""
    return load_params(PARAMS_FILE)


# --------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return res.stdout.strip()


#: Paths whose uncommitted changes make a run "dirty" (code and configuration, not outputs).
_CODE_PATHS = ("sd_darts", "pipelines", "dvc.yaml", "params.yaml", "params-smoke.yaml", "pyproject.toml")


def git_info() -> dict[str, Any]:
    """Git revision and whether code or configuration differ from it.

    A ``params.yaml`` that is a byte-for-byte copy of a committed profile (``params-smoke.yaml``,
    as ``scripts/smoke.sh`` makes) is not a change: the profile is recorded instead.
    """
    rev = _git("rev-parse", "--short=12", "HEAD")
    status = _git_bytes("status", "--porcelain=v1", "-z", "--", *_CODE_PATHS)
    info: dict[str, Any] = {"git_rev": rev or "unknown", "git_dirty": None, "params_file": "params.yaml"}
    if status is None:
        return info
    # entries "XY path" separated by NUL (a rename adds its source as one more entry)
    changed = [entry[3:] for entry in status.decode("utf-8", "replace").split("\0") if len(entry) > 3]
    if "params.yaml" in changed:
        current = (ROOT / "params.yaml").read_bytes() if (ROOT / "params.yaml").exists() else None
        for profile in sorted(ROOT.glob("params-*.yaml")):
            committed = _git_bytes("show", f"HEAD:{profile.name}")
            if committed is not None and committed == current and profile.name not in changed:
                changed.remove("params.yaml")
                info["params_file"] = profile.name
                break
    info["git_dirty"] = bool(changed)
    return info


def _git_bytes(*args: str) -> bytes | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def provenance(stage: str, run: str | Path, device: str, command: str, **extra: Any) -> dict[str, Any]:
    """What produced a run: stage, run folder, device, git revision, equivalent command."""
    return {"stage": stage, "run": str(run), "device": device, "command": command, **git_info(), **extra}


def resolved_device(name: str) -> str:
    from sd_darts.runtime import pick_device

    return str(pick_device(name))


def command_line(command: str, cfg) -> str:
    """The exact ``sd-darts <command> ...`` equivalent of a run: every setting that differs from
    the command's default, as a flag (so it holds whatever params file or section it came from)."""
    import dataclasses

    parts = ["sd-darts", command]
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if value == default or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------------


#: Settings that never change a run's results (left out of its identity).
_NOT_IDENTITY = ("out", "device", "num_workers", "progress", "pin_memory", "channels_last", "data_root", "download")
STAMP = "pipeline_stamp.json"


#: Library files that cannot change a run's results (reporting, command-line wrappers).
_NOT_RUN_CODE = (
    "sd_darts/report.py",
    "sd_darts/paper/",
    "sd_darts/commands/",
    "sd_darts/cli.py",
    "sd_darts/__main__.py",
)


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """Hash of the library source that runs use (``sd_darts/**/*.py`` minus :data:`_NOT_RUN_CODE`)."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "sd_darts").rglob("*.py")):
        if path.relative_to(ROOT).as_posix().startswith(_NOT_RUN_CODE):
            continue
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_identity(cfg) -> dict[str, Any]:
    """What determines a run's results: its settings (minus :data:`_NOT_IDENTITY`), the content
    of its genotype file if it has one (a path in the settings says nothing of what it holds),
    and the library code."""
    settings = {k: v for k, v in cfgmod.to_dict(cfg).items() if k not in _NOT_IDENTITY}
    identity: dict[str, Any] = {"settings": settings, "code": code_hash()}
    genotype = settings.get("genotype")
    if isinstance(genotype, str) and Path(genotype).is_file():
        identity["genotype_md5"] = md5_file(Path(genotype))
    return json.loads(json.dumps(identity, sort_keys=True, default=str))


def _write_stamp(out: Path, identity: dict[str, Any], status: str) -> None:
    files.write_text(out / STAMP, json.dumps({"identity": identity, "status": status}, indent=2, sort_keys=True) + "\n")


def prepare_run_dir(out: str | Path, cfg) -> str:
    """Make ``out`` ready for a run with settings ``cfg``; returns what will happen.

    The run folder holds :data:`STAMP`: the run's identity (:func:`run_identity`) and whether
    it finished.  ``reuse``: it finished with the same identity; nothing to run.  ``resume``:
    an interrupted run with the same identity; the library resumes it from its checkpoint.
    ``fresh``: nothing there, or a run of another identity (other settings, genotype or code),
    which is removed first: a stale checkpoint is never reused.
    """
    out = Path(out)
    identity = run_identity(cfg)
    if out.exists():
        stamp_path = out / STAMP
        stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else None
        if stamp is not None and stamp.get("identity") == identity:
            if stamp.get("status") == "finished":
                log.info("%s already finished with these settings and code: reusing it", out)
                return "reuse"
            log.info("resuming the interrupted run in %s", out)
            return "resume"
        what = "no pipeline stamp" if stamp is None else "another identity (settings, genotype or code changed)"
        log.info("starting %s afresh: the folder holds a run of %s", out, what)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_stamp(out, identity, "running")
    return "fresh"


def _finish(cfg, stage: str, command: str) -> None:
    """Record what produced the finished run (``provenance.json``) and stamp it finished."""
    prov = provenance(stage, cfg.out, resolved_device(cfg.device), command)
    files.write_text(Path(cfg.out) / "provenance.json", json.dumps(prov, indent=2, sort_keys=True) + "\n")
    _write_stamp(Path(cfg.out), run_identity(cfg), "finished")


def dvclive_curves(dvclive_dir: Path) -> str | None:
    """Merge DVCLive's per-metric TSVs (``plots/metrics/<name>.tsv``) into one TSV text:
    ``epoch`` then one column per metric (sorted), fixed float format."""
    import pandas as pd

    root = dvclive_dir / "plots" / "metrics"
    if not root.is_dir():
        return None
    merged = None
    for path in sorted(root.rglob("*.tsv")):
        name = path.relative_to(root).with_suffix("").as_posix()
        df = pd.read_csv(path, sep="\t")
        value_col = [c for c in df.columns if c != "step"][0]
        df = df[["step", value_col]].rename(columns={"step": "epoch", value_col: name})
        df = df.drop_duplicates(subset="epoch", keep="last")
        merged = df if merged is None else merged.merge(df, on="epoch", how="outer")
    if merged is None:
        return None
    merged = merged.sort_values("epoch")
    merged = merged[["epoch"] + sorted(c for c in merged.columns if c != "epoch")]
    merged["epoch"] = merged["epoch"].astype(int)
    return merged.to_csv(sep="\t", index=False, float_format="%.8g", lineterminator="\n")


def collect_run(run_dir: Path, dest: Path, files: tuple[str, ...]) -> None:
    """Copy a run's small outputs (``files``, ``provenance.json``, merged DVCLive curves) into
    ``dest`` atomically."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for name in files:
            src = run_dir / name
            if src.exists():
                shutil.copyfile(src, tmp / name)
        curves = dvclive_curves(run_dir / "dvclive")
        if curves is not None:
            (tmp / "curves.tsv").write_text(curves)
        replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def replace_dir(src: Path, dest: Path) -> None:
    """Move the folder ``src`` onto ``dest`` (replacing it)."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old)
    else:
        os.replace(src, dest)


SEARCH_FILES = ("summary.json", "genotype.json", "config.yaml", "provenance.json")
TRAIN_FILES = ("metrics.json", "config.yaml", "provenance.json")


def run_search(cfg, stage: str, dest: Path) -> dict[str, Any]:
    """Run (resume, or reuse) one search and collect it into ``dest``; returns its summary."""
    from sd_darts.search import run_search as library_run_search

    if prepare_run_dir(cfg.out, cfg) == "reuse":
        summary = files.read_json(Path(cfg.out) / "summary.json", what="search summary")
    else:
        summary = library_run_search(cfg).summary
        _finish(cfg, stage, command_line("search", cfg))
    collect_run(Path(cfg.out), dest, SEARCH_FILES)
    return summary


def run_train(cfg, stage: str, dest: Path, command: str, nproc: int = 1) -> dict[str, Any]:
    """Run (resume, or reuse) one training and collect it into ``dest``; returns its metrics.

    ``nproc`` > 1 runs the command data-parallel under ``torchrun --standalone`` (one process
    per GPU) instead of in this process."""
    from sd_darts.train import run_training

    line = command_line(command, cfg)
    if nproc > 1:
        line = f"torchrun --standalone --nproc_per_node {nproc} -m sd_darts " + line.split(" ", 1)[1]
    if prepare_run_dir(cfg.out, cfg) == "reuse":
        metrics = files.read_json(Path(cfg.out) / "metrics.json", what="training metrics")
    elif nproc > 1:
        argv = [sys.executable, "-m", "torch.distributed.run"] + shlex.split(line)[1:]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        if subprocess.run(argv, cwd=os.getcwd(), env=env).returncode != 0:
            raise UserError(f"{stage}: the distributed run failed ({line}); its checkpoint is kept, rerun to resume")
        metrics = files.read_json(Path(cfg.out) / "metrics.json", what="training metrics")
        _finish(cfg, stage, line)
    else:
        metrics = run_training(cfg).metrics
        _finish(cfg, stage, line)
    collect_run(Path(cfg.out), dest, TRAIN_FILES)
    return metrics


def md5_file(path: Path) -> str:
    """md5 of a file, by torchvision's helper (the one the CIFAR-10 checks use)."""
    from torchvision.datasets.utils import calculate_md5

    return calculate_md5(str(path))
