"""Reading the metrics tree the report is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .. import files
from ..errors import UserError


@dataclass
class Run:
    """One run folder of the metrics tree."""

    name: str
    path: Path
    summary: dict[str, Any]
    provenance: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    curves: pd.DataFrame | None = None
    genotype: dict[str, Any] | None = None

    @property
    def seed(self) -> int | None:
        seed = self.summary.get("seed", self.config.get("seed"))
        return None if seed is None else int(seed)

    @property
    def device(self) -> str:
        return str(self.provenance.get("device") or self.summary.get("device") or "unknown")

    @property
    def git(self) -> str:
        rev = str(self.provenance.get("git_rev") or "unknown")
        return rev + ("+dirty" if self.provenance.get("git_dirty") else "")


@dataclass
class AblationPoint:
    parameter: str
    value: int
    seed: int
    search: Run | None
    eval: Run | None


@dataclass
class Metrics:
    root: Path
    searches: list[Run]
    selection: dict[str, Any] | None
    selected_genotype: dict[str, Any] | None
    genotype_stats: dict[str, Any] | None
    train_cifar: list[Run]
    train_imagenet: list[Run]
    imagenet_status: dict[str, Any] | None
    nb201_searches: list[Run]
    nb201_query: dict[str, Any] | None
    ablation_warmup: list[AblationPoint]
    ablation_window: list[AblationPoint]
    ignored: list[str] = field(default_factory=list)

    def all_runs(self) -> list[tuple[str, Run]]:
        out: list[tuple[str, Run]] = []
        out += [("search", r) for r in self.searches]
        out += [("train_cifar", r) for r in self.train_cifar]
        out += [("train_imagenet", r) for r in self.train_imagenet]
        out += [("nasbench201", r) for r in self.nb201_searches]
        for kind, points in (("ablation_warmup", self.ablation_warmup), ("ablation_window", self.ablation_window)):
            for p in points:
                for r in (p.search, p.eval):
                    if r is not None:
                        out.append((kind, r))
        return out


def _read_json_if(path: Path) -> Any:
    return files.read_json(path, what="metrics file") if path.exists() else None


def _read_yaml_if(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"metrics file {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    return data if isinstance(data, dict) else {}


def _read_curves(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        df = pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"metrics file {path} is not a readable TSV ({exc})") from None
    if "epoch" not in df.columns:
        raise UserError(f"metrics file {path} has no 'epoch' column; regenerate it with the pipeline")
    return df.sort_values("epoch").reset_index(drop=True)


def _read_run(path: Path, summary_name: str) -> Run | None:
    summary = _read_json_if(path / summary_name)
    if summary is None:
        return None
    return Run(
        name=path.name,
        path=path,
        summary=summary,
        provenance=_read_json_if(path / "provenance.json") or {},
        config=_read_yaml_if(path / "config.yaml"),
        curves=_read_curves(path / "curves.tsv"),
        genotype=_read_json_if(path / "genotype.json"),
    )


def _selected_dirs(folder: Path, expected: set[str] | None, ignored: list[str]) -> list[Path]:
    """Sub-folders of ``folder`` (sorted); with ``expected``, only those named in it (the others
    are recorded in ``ignored``)."""
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        if not p.is_dir() or p.name.startswith("."):
            continue
        if expected is not None and p.name not in expected:
            ignored.append(f"{folder.name}/{p.name}")
            continue
        out.append(p)
    return out


def _runs(folder: Path, summary_name: str, expected: set[str] | None, ignored: list[str]) -> list[Run]:
    runs = [_read_run(p, summary_name) for p in _selected_dirs(folder, expected, ignored)]
    return [r for r in runs if r is not None]


def _points(folder: Path, expected: set[str] | None, ignored: list[str]) -> list[AblationPoint]:
    points = []
    for p in _selected_dirs(folder, expected, ignored):
        point = _read_json_if(p / "point.json")
        if point is None:
            continue
        points.append(
            AblationPoint(
                parameter=str(point["parameter"]),
                value=int(point["value"]),
                seed=int(point["seed"]),
                search=_read_run(p / "search", "summary.json"),
                eval=_read_run(p / "eval", "metrics.json"),
            )
        )
    points.sort(key=lambda q: (q.value, q.seed))
    return points


def expected_runs(params: dict[str, Any]) -> dict[str, set[str]] | None:
    """The run folders the pipeline makes with ``params`` (its matrices), per metrics
    sub-folder; None when ``params`` has no pipeline sections (then every folder is read).

    Folders left in ``metrics/`` by other params (a previous profile, a shrunk seed list) are
    not reported as results of these params."""
    try:
        seeds, pipe, ab = params["seeds"], params["pipeline"], params["ablation"]
        return {
            "search": {f"{m}-s{s}" for m in pipe["search_methods"] for s in seeds["search"]},
            "train_cifar": {f"{g}-s{s}" for g in pipe["eval_genotypes"] for s in seeds["train_cifar"]},
            "train_imagenet": {f"{g}-s{s}" for g in pipe["eval_genotypes"] for s in seeds["train_imagenet"]},
            "nasbench201_search": {f"s{s}" for s in seeds["nasbench201"]},
            "ablation_warmup": {f"xi{v}-s{s}" for v in ab["warmup_epochs"] for s in seeds["ablation"]},
            "ablation_window": {f"k{v}-s{s}" for v in ab["window"] for s in seeds["ablation"]},
        }
    except (KeyError, TypeError):
        return None


def load_metrics(root: str | Path, expected: dict[str, set[str]] | None = None) -> Metrics:
    """Read the metrics folder ``root`` (see the module docstring for its layout); with
    ``expected`` (:func:`expected_runs`), only the run folders it names."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"metrics folder {root} does not exist; run the pipeline (dvc repro) or point --metrics at one")
    exp = expected or {}
    ignored: list[str] = []
    metrics = Metrics(
        root=root,
        searches=_runs(root / "search", "summary.json", exp.get("search"), ignored),
        selection=_read_json_if(root / "genotype" / "selection.json"),
        selected_genotype=_read_json_if(root / "genotype" / "selected.json"),
        genotype_stats=_read_json_if(root / "genotype" / "stats.json"),
        train_cifar=_runs(root / "train_cifar", "metrics.json", exp.get("train_cifar"), ignored),
        train_imagenet=_runs(root / "train_imagenet", "metrics.json", exp.get("train_imagenet"), ignored),
        imagenet_status=_read_json_if(root / "train_imagenet" / "status.json"),
        nb201_searches=_runs(root / "nasbench201_search", "summary.json", exp.get("nasbench201_search"), ignored),
        nb201_query=_read_json_if(root / "nasbench201" / "query.json"),
        ablation_warmup=_points(root / "ablation_warmup", exp.get("ablation_warmup"), ignored),
        ablation_window=_points(root / "ablation_window", exp.get("ablation_window"), ignored),
    )
    metrics.ignored = sorted(ignored)
    return metrics
