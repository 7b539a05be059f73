"""Reading the metrics tree a :class:`~sd_darts.report.spec.ReportSpec` describes.

:func:`load_metrics` reads and checks every input before anything is written; a run the spec
expects but cannot find is "not run", a run of another profile (its own ``provenance.json``) or
one the spec does not name is "not reported", so no run is ever shown under the wrong profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from ..errors import UserError
from . import metrics_files
from .spec import ABLATION_KINDS, ABLATIONS, SEARCH_KINDS, TRAIN_KINDS, ReportSpec, RunRef

#: Files that mark a folder as a run (or an ablation point) in the metrics root.
_RUN_MARKERS = ("provenance.json", "point.json")
#: The file whose presence means a run finished, per kind.
RESULT_FILE = {"search": "summary.json", "nb201_search": "summary.json"}
RESULT_FILE.update({kind: "metrics.json" for kind in TRAIN_KINDS})


@dataclass
class Run:
    """One finished run of the metrics tree (for an ablation point: its search or its eval)."""

    ref: RunRef
    rel: str  # folder relative to the metrics root
    summary: dict[str, Any]
    provenance: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    curves: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.rel).name

    @property
    def seed(self) -> int:
        return self.ref.seed

    @property
    def profile(self) -> str:
        return self.provenance["profile"]

    @property
    def device(self) -> str:
        return str(self.provenance.get("device") or self.summary.get("device") or "unknown")

    @property
    def git(self) -> str:
        rev = str(self.provenance.get("git_rev") or "unknown")
        return rev + ("+dirty" if self.provenance.get("git_dirty") else "")


@dataclass
class AblationPoint:
    ref: RunRef
    search: Run | None
    eval: Run | None

    @property
    def value(self) -> int | float:
        return self.ref.value

    @property
    def seed(self) -> int:
        return self.ref.seed


@dataclass
class Metrics:
    """Everything the report shows, read from the metrics root."""

    root: Path
    spec: ReportSpec
    runs: dict[str, list[Run]]
    points: dict[str, list[AblationPoint]]
    selection: dict[str, Any] | None = None
    selected_genotype: dict[str, Any] | None = None
    darts_genotype: dict[str, Any] | None = None
    genotype_stats: dict[str, Any] | None = None
    imagenet_status: dict[str, Any] | None = None
    nb201_query: dict[str, Any] | None = None
    not_reported: list[str] = field(default_factory=list)
    other_profiles: dict[str, list[str]] = field(default_factory=dict)

    @property
    def searches(self) -> list[Run]:
        return self.runs["search"]

    @property
    def nb201_searches(self) -> list[Run]:
        return self.runs["nb201_search"]

    @property
    def train_cifar(self) -> list[Run]:
        return self.runs["train_cifar"]

    @property
    def train_imagenet(self) -> list[Run]:
        return self.runs["train_imagenet"]

    @property
    def ablation_warmup(self) -> list[AblationPoint]:
        return self.points["ablation_warmup"]

    @property
    def ablation_window(self) -> list[AblationPoint]:
        return self.points["ablation_window"]

    def all_runs(self) -> list[Run]:
        """Every run shown, in the order of the provenance table."""
        out = [r for kind in ("search", "train_cifar", "train_imagenet", "nb201_search") for r in self.runs[kind]]
        for kind in ABLATION_KINDS:
            for p in self.points[kind]:
                out += [r for r in (p.search, p.eval) if r is not None]
        return out


def _existing(root: Path, rel: str, folder: bool) -> Path | None:
    """``root/rel`` if it exists (None if not); a file where a folder is expected, or the
    reverse, is an error."""
    path = root / rel
    if not path.exists():
        return None
    if folder and not path.is_dir():
        raise UserError(f"metrics path {path} must be a run folder, not a file; remove it or regenerate it")
    if not folder and path.is_dir():
        raise metrics_files.bad(path, "is a folder, not a file")
    return path


def _check_seed(path: Path, data: dict[str, Any], ref: RunRef) -> None:
    seed = data.get("seed")
    if seed is not None and seed != ref.seed:
        raise metrics_files.bad(
            path, f"records seed {seed!r}, but the run {ref.path} is expected to be of seed {ref.seed}"
        )


def _read_run(root: Path, ref: RunRef, rel: str, kind: str) -> Run | None:
    """The run in ``root/rel`` (None if it did not finish: no result file)."""
    folder = _existing(root, rel, folder=True)
    if folder is None or not (folder / RESULT_FILE[kind]).exists():
        return None
    result = folder / RESULT_FILE[kind]
    if kind in SEARCH_KINDS:
        summary = metrics_files.search_summary(result)
        if kind == "search" and ref.label and summary["method"] != ref.label:
            raise metrics_files.bad(
                result, f"records method {summary['method']!r}, but {ref.path} is a {ref.label} search"
            )
    else:
        summary = metrics_files.train_metrics(result, top5=kind == "train_imagenet")
    _check_seed(result, summary, ref)
    prov_path = folder / "provenance.json"
    if not prov_path.exists():
        raise UserError(
            f"run {folder} has no provenance.json (which names its profile); regenerate it with the pipeline"
        )
    run = Run(ref=ref, rel=rel, summary=summary, provenance=metrics_files.provenance(prov_path))
    config = _existing(root, f"{rel}/config.yaml", folder=False)
    if config is not None:
        run.config = metrics_files.read_yaml(config)
        _check_seed(config, run.config, ref)
    curves = _existing(root, f"{rel}/curves.tsv", folder=False)
    if curves is not None:
        run.curves = metrics_files.read_tsv(curves)
    return run


def _read_point(root: Path, spec: ReportSpec, ref: RunRef) -> AblationPoint | None:
    folder = _existing(root, ref.path, folder=True)
    if folder is None or not (folder / "point.json").exists():
        return None
    point_path = folder / "point.json"
    point = metrics_files.point(point_path)
    swept, fixed, fixed_key = ABLATIONS[ref.kind]
    expected = {"parameter": swept, "value": ref.value, "seed": ref.seed}
    for key, want in expected.items():
        if point[key] != want:
            raise metrics_files.bad(
                point_path, f"records {key} {point[key]!r}, but {ref.path} is expected to have {want!r}"
            )
    search = _read_run(root, ref, f"{ref.path}/search", "search")
    evaluation = _read_run(root, ref, f"{ref.path}/eval", "train_cifar")
    if search is not None:
        cfg_path = folder / "search" / "config.yaml"
        want = {swept: ref.value}
        if spec.ablation_fixed.get(fixed_key) is not None:
            want[fixed] = spec.ablation_fixed[fixed_key]
        for key, value in want.items():
            if key in search.config and search.config[key] != value:
                raise metrics_files.bad(
                    cfg_path, f"records {key}={search.config[key]!r}, but this ablation expects {key}={value!r}"
                )
    return AblationPoint(ref=ref, search=search, eval=evaluation)


def _stage_file(root: Path, rel: str | None, reader) -> dict[str, Any] | None:
    if rel is None:
        return None
    path = _existing(root, rel, folder=False)
    return None if path is None else reader(path)


def _unclaimed_runs(root: Path, spec: ReportSpec) -> list[str]:
    """Run folders under ``root`` (holding a provenance.json or point.json) outside every path
    the spec names, top-most only."""
    claimed = set(spec.claimed())
    above = {str(p) for c in claimed for p in PurePosixPath(c).parents if str(p) != "."}
    found: list[str] = []

    def walk(folder: Path, rel: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            sub = f"{rel}/{entry.name}" if rel else entry.name
            if sub in claimed:
                continue
            path = Path(entry.path)
            if sub not in above and any((path / m).is_file() for m in _RUN_MARKERS):
                found.append(sub)
            elif depth < 16:
                walk(path, sub, depth + 1)

    walk(root, "", 0)
    return found


def final_eigenvalue(curves: pd.DataFrame | None) -> float | None:
    """The last dominant Hessian eigenvalue in a search's per-epoch curves (None if it measured none)."""
    if curves is None or "hessian/eigenvalue" not in curves:
        return None
    values = curves["hessian/eigenvalue"].dropna()
    return float(values.iloc[-1]) if len(values) else None


def load_metrics(root: str | Path, spec: ReportSpec) -> Metrics:
    """Read and check every input of the report described by ``spec`` under ``root``."""
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise UserError(f"metrics folder {root} {what}; run the pipeline (dvc repro) or point --metrics at one")
    metrics = Metrics(root=root, spec=spec, runs={k: [] for k in RESULT_FILE}, points={k: [] for k in ABLATION_KINDS})
    other: dict[str, set[str]] = {}

    def keep(ref_path: str, runs: list[Run | None]) -> bool:
        profiles = sorted({r.profile for r in runs if r is not None} - {spec.profile})
        if profiles:
            other.setdefault(profiles[0], set()).add(ref_path)
        return not profiles

    for ref in spec.runs:
        if ref.kind in ABLATION_KINDS:
            point = _read_point(root, spec, ref)
            if point is not None and keep(ref.path, [point.search, point.eval]):
                metrics.points[ref.kind].append(point)
        else:
            run = _read_run(root, ref, ref.path, ref.kind)
            if run is not None and keep(ref.path, [run]):
                metrics.runs[ref.kind].append(run)
    for kind in ABLATION_KINDS:
        metrics.points[kind].sort(key=lambda p: (p.value, p.seed, p.ref.path))

    if spec.genotype_dir is not None and _existing(root, spec.genotype_dir, folder=True) is not None:
        folder = root / spec.genotype_dir
        selection = _stage_file(root, f"{spec.genotype_dir}/selection.json", metrics_files.selection)
        if selection is not None and selection["profile"] != spec.profile:
            other.setdefault(selection["profile"], set()).add(spec.genotype_dir)
        elif selection is not None:
            metrics.selection = selection
            if (folder / "selected.json").exists():
                metrics.selected_genotype = metrics_files.genotype(folder / "selected.json")
            if (folder / "darts.json").exists() and selection.get("darts_baseline"):
                metrics.darts_genotype = metrics_files.genotype(folder / "darts.json")
            metrics.genotype_stats = _stage_file(root, f"{spec.genotype_dir}/stats.json", metrics_files.genotype_stats)
    for attr, rel, reader in (
        ("nb201_query", spec.nb201_query, metrics_files.nb201_query),
        ("imagenet_status", spec.imagenet_status, metrics_files.stage_status),
    ):
        data = _stage_file(root, rel, reader)
        if data is not None and data["profile"] != spec.profile:
            other.setdefault(data["profile"], set()).add(rel)
        else:
            setattr(metrics, attr, data)

    metrics.not_reported = _unclaimed_runs(root, spec)
    metrics.other_profiles = {p: sorted(paths) for p, paths in sorted(other.items())}
    return metrics
