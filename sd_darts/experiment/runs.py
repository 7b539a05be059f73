"""Run folders of the pipeline: identity, resume-or-restart, provenance, and collection of a
finished run's small outputs into ``metrics/``.

A persisted run folder is resumed only while its identity (:func:`run_identity`: the settings
that change results, the genotype it trains, the code it runs) is unchanged; otherwise
:func:`prepare_run_dir` starts it afresh (docs/pipeline.md, "Long stages resume").
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..utils import config, files
from .deps import REPO, code_hash

log = logging.getLogger("sd_darts.experiment")

STAMP = "pipeline_stamp.json"
#: Paths whose uncommitted changes make a run "dirty" (code and configuration, not outputs).
CODE_PATHS = ("sd_darts", "dvc.yaml", "params.yaml", "pyproject.toml")


# --------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------


def _git(*args: str) -> bytes | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def git_info() -> dict[str, Any]:
    """Git revision and whether code or configuration differ from it.

    A ``params.yaml`` that is a byte-for-byte copy of a committed profile file
    (``params-smoke.yaml``, as ``scripts/smoke.sh`` makes) is not a change: the file is named instead.
    """
    rev = _git("rev-parse", "--short=12", "HEAD")
    info: dict[str, Any] = {
        "git_rev": rev.decode().strip() if rev else "unknown",
        "git_dirty": None,
        "params_file": "params.yaml",
    }
    status = _git("status", "--porcelain=v1", "-z", "--", *CODE_PATHS)
    if status is None:
        return info
    changed = [entry[3:] for entry in status.decode("utf-8", "replace").split("\0") if len(entry) > 3]
    if "params.yaml" in changed:
        current = (REPO / "params.yaml").read_bytes() if (REPO / "params.yaml").exists() else None
        for profile in sorted(REPO.glob("params-*.yaml")):
            if profile.name not in changed and _git("show", f"HEAD:{profile.name}") == current:
                changed.remove("params.yaml")
                info["params_file"] = profile.name
                break
    info["git_dirty"] = bool(changed)
    return info


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Python, torch, CUDA, cuDNN, GPU and (inside the image) the image that ran a stage."""
    import torch

    from ..tools import container_spec

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": str(torch.backends.cudnn.version()) if cuda and torch.backends.cudnn.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "image_id": container_spec.image_provenance().get("image_id"),
    }


def provenance(profile: str, stage: str, run: str | Path, device: str, command: str, **extra: Any) -> dict[str, Any]:
    """What produced a run: profile, stage, run folder, device, environment, git revision, command."""
    return {
        "profile": profile,
        "stage": stage,
        "run": str(run),
        "device": device,
        "command": command,
        **environment(),
        **git_info(),
        **extra,
    }


def command_line(command: str, cfg) -> str:
    """The exact ``sd-darts <command> ...`` equivalent of a run: every setting that differs from
    the command's default, as a flag."""
    import dataclasses

    parts = ["sd-darts", command]
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if value == default or value is None:
            continue
        flag = config.flag(f.name)
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            parts += [flag, shlex.quote(",".join(map(str, value)))]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------------


def run_identity(cfg, stage_module: str) -> dict[str, Any]:
    """What determines a run's results: its fingerprinted settings, the content of its genotype
    file if it has one, and the code its stage imports."""
    identity: dict[str, Any] = {"settings": config.fingerprint_fields(cfg), "code": code_hash(stage_module)}
    genotype = getattr(cfg, "genotype", None)
    if isinstance(genotype, str) and Path(genotype).is_file():
        identity["genotype"] = files.read_json(genotype, what="genotype file")
    return json.loads(json.dumps(identity, sort_keys=True, default=str))


def _write_stamp(out: Path, identity: dict[str, Any], status: str) -> None:
    files.write_json(out / STAMP, {"identity": identity, "status": status})


def prepare_run_dir(out: str | Path, identity: dict[str, Any]) -> str:
    """Make ``out`` ready for a run of ``identity``; returns ``reuse``, ``resume`` or ``fresh``.

    ``reuse``: it finished with the same identity.  ``resume``: an interrupted run with the same
    identity; the library resumes it from its checkpoint.  ``fresh``: nothing there, or a run of
    another identity, which is removed first: a stale checkpoint is never reused.
    """
    out = Path(out)
    if out.exists():
        stamp_path = out / STAMP
        stamp = files.read_json(stamp_path, what="pipeline stamp") if stamp_path.is_file() else None
        if isinstance(stamp, dict) and stamp.get("identity") == identity:
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


def finish_run(out: Path, identity: dict[str, Any], prov: dict[str, Any]) -> None:
    """Record what produced the finished run (``provenance.json``) and stamp it finished."""
    files.write_json(out / "provenance.json", prov)
    _write_stamp(out, identity, "finished")


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


def collect_run(run_dir: Path, dest: Path, names: tuple[str, ...]) -> None:
    """Copy a run's small outputs (``names``, ``provenance.json``, merged DVCLive curves as
    ``curves.tsv``) into ``dest``, replacing it as a whole."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for name in (*names, "provenance.json"):
            if (run_dir / name).exists():
                shutil.copyfile(run_dir / name, tmp / name)
                os.chmod(tmp / name, 0o666 & ~_umask())
        curves = dvclive_curves(run_dir / "dvclive")
        if curves is not None:
            files.write_text(tmp / "curves.tsv", curves)
        os.chmod(tmp, 0o777 & ~_umask())
        replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
