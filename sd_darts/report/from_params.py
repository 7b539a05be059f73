"""The bridge from a params file to a :class:`~sd_darts.report.spec.ReportSpec`, for TODAY's
metrics layout.  The experiment layer (``sd_darts/experiment/``) will replace this module: it
is the only place in the report package that knows ``params.yaml`` and how the pipeline names
its metrics folders.

Layout read here (relative to the metrics root; every run folder holds ``provenance.json``)::

    search/<method>-s<seed>/           summary.json, curves.tsv, config.yaml
    train_cifar/<genotype>-s<seed>/    metrics.json, curves.tsv, config.yaml
    train_imagenet/<genotype>-s<seed>/ metrics.json, ...;  train_imagenet/status.json
    nasbench201_search/s<seed>/        as search/
    nasbench201/query.json
    genotype/                          selection.json, selected.json, stats.json
    ablation_warmup/xi<ξ>-s<seed>/     point.json, search/, eval/
    ablation_window/k<K>-s<seed>/      likewise

The runs expected are the params file's matrices (``seeds``, ``pipeline.search_methods``,
``pipeline.eval_genotypes``, ``ablation.warmup_epochs`` / ``ablation.window``).  A params file
without these sections (only ``search:``, say) expects every run folder of the layout found
in the metrics root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..config import read_yaml_mapping
from ..errors import UserError
from ..paper import TABLE1
from . import schema
from .spec import ReportSpec, RunRef

DEFAULT_TITLE = "SD-DARTS reproduction report"

#: kind → (folder in the metrics root, run folder name of (label, value, seed), its pattern).
FOLDERS = {
    "search": ("search", "{label}-s{seed}", r"(?P<label>.+)-s(?P<seed>\d+)"),
    "train_cifar": ("train_cifar", "{label}-s{seed}", r"(?P<label>.+)-s(?P<seed>\d+)"),
    "train_imagenet": ("train_imagenet", "{label}-s{seed}", r"(?P<label>.+)-s(?P<seed>\d+)"),
    "nb201_search": ("nasbench201_search", "s{seed}", r"s(?P<seed>\d+)"),
    "ablation_warmup": ("ablation_warmup", "xi{value}-s{seed}", r"xi(?P<value>\d+)-s(?P<seed>\d+)"),
    "ablation_window": ("ablation_window", "k{value}-s{seed}", r"k(?P<value>\d+)-s(?P<seed>\d+)"),
}
#: The seed lists of the params file's ``seeds:`` section.
SEED_LISTS = ("search", "train_cifar", "train_imagenet", "nasbench201", "ablation")
GENOTYPE_DIR = "genotype"
NB201_QUERY = "nasbench201/query.json"
IMAGENET_STATUS = "train_imagenet/status.json"


def _section(params: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    body = params.get(name) or {}
    if not isinstance(body, dict):
        raise UserError(f"params file {path}: '{name}:' must be a mapping")
    return body


def _seeds(value: Any, where: str, path: Path) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        raise UserError(f"params file {path}: {where} must be a list of non-negative integers, got {value!r}")
    return value


def _names(value: Any, where: str, path: Path) -> list[str]:
    ok = isinstance(value, list) and all(isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", v) for v in value)
    if not ok:
        raise UserError(f"params file {path}: {where} must be a list of names, got {value!r}")
    return value


def _run(kind: str, seed: int, label: str = "", value: int | None = None) -> RunRef:
    folder, name, _ = FOLDERS[kind]
    path = f"{folder}/{name.format(label=label, value=value, seed=seed)}"
    return RunRef(
        kind, path, seed, label=label if kind in ("search", "train_cifar", "train_imagenet") else "", value=value
    )


def _runs_of_matrices(params: dict[str, Any], path: Path) -> list[RunRef]:
    seeds = _section(params, "seeds", path)
    pipe = _section(params, "pipeline", path)
    ab = _section(params, "ablation", path)

    def need(section: dict, name: str, key: str) -> Any:
        if key not in section:
            raise UserError(f"params file {path} has no {name}.{key}; add it (see params.yaml)")
        return section[key]

    s = {k: _seeds(need(seeds, "seeds", k), f"seeds.{k}", path) for k in SEED_LISTS}
    methods = _names(need(pipe, "pipeline", "search_methods"), "pipeline.search_methods", path)
    genotypes = _names(need(pipe, "pipeline", "eval_genotypes"), "pipeline.eval_genotypes", path)
    runs = [_run("search", seed, m) for m in methods for seed in s["search"]]
    runs += [_run("train_cifar", seed, g) for g in genotypes for seed in s["train_cifar"]]
    runs += [_run("train_imagenet", seed, g) for g in genotypes for seed in s["train_imagenet"]]
    runs += [_run("nb201_search", seed) for seed in s["nasbench201"]]
    for kind, key in (("ablation_warmup", "warmup_epochs"), ("ablation_window", "window")):
        values = _seeds(need(ab, "ablation", key), f"ablation.{key}", path)
        runs += [_run(kind, seed, value=v) for v in values for seed in s["ablation"]]
    return runs


def _runs_in_folder(metrics_root: Path) -> list[RunRef]:
    """Every run folder of the layout found under ``metrics_root``."""
    runs = []
    for kind, (folder, _, pattern) in FOLDERS.items():
        base = metrics_root / folder
        if not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            m = re.fullmatch(pattern, entry.name)
            if not entry.is_dir() or m is None:
                continue
            groups = m.groupdict()
            value = int(groups["value"]) if "value" in groups else None
            runs.append(_run(kind, int(groups["seed"]), groups.get("label", ""), value))
    return runs


def spec_from_params(params_path: str | os.PathLike, metrics_root: str | os.PathLike) -> ReportSpec:
    """The report of the params file ``params_path`` over the metrics root ``metrics_root``.

    ``profile`` and ``report.title`` give the profile and title; ``search:`` the Table 1
    settings; ``ablation.warmup_window`` / ``ablation.window_warmup_epochs`` the settings the
    ablations hold fixed; the matrices the expected runs (see the module docstring).
    """
    path = Path(params_path)
    params = read_yaml_mapping(path)
    profile = params.get("profile", "paper")
    if not isinstance(profile, str) or not profile:
        raise UserError(f"params file {path}: profile must be a name, got {profile!r}")
    title = _section(params, "report", path).get("title", DEFAULT_TITLE)
    if not isinstance(title, str) or "\n" in title:
        raise UserError(f"params file {path}: report.title must be one line of text, got {title!r}")
    search = _section(params, "search", path)
    table1 = {}
    for _, key, _, _ in TABLE1:
        value = search.get(key)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise UserError(f"params file {path}: search.{key} must be a number, got {value!r}")
        table1[key] = value
    if any(name in params for name in ("seeds", "pipeline", "ablation")):
        runs = _runs_of_matrices(params, path)
    else:
        runs = _runs_in_folder(Path(metrics_root))
    ab = _section(params, "ablation", path)
    fixed = {}
    for spec_key, key in (
        ("window_in_warmup_sweep", "warmup_window"),
        ("warmup_in_window_sweep", "window_warmup_epochs"),
    ):
        value = ab.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise UserError(f"params file {path}: ablation.{key} must be a number, got {value!r}")
        if value is not None:
            fixed[spec_key] = value
    try:
        return ReportSpec(
            profile=profile,
            title=title,
            table1=table1,
            runs=tuple(runs),
            genotype_dir=GENOTYPE_DIR,
            nb201_query=NB201_QUERY,
            imagenet_status=IMAGENET_STATUS,
            ablation_fixed=fixed,
        )
    except ValueError as exc:
        raise UserError(f"params file {path}: {exc}") from None


def params_file_of(metrics_root: str | os.PathLike) -> str:
    """The params file that produced the metrics, from their runs' ``provenance.json``
    (``params_file``: ``params.yaml``, or the committed profile it was a copy of); the
    report of committed metrics is regenerated with it (``--params auto``).  Raises if the
    runs disagree."""
    found = set()
    for prov in sorted(Path(metrics_root).rglob("provenance.json")):
        data = schema.read_json(prov)
        value = data.get("params_file") if isinstance(data, dict) else None
        if value:
            found.add(str(value))
    if len(found) > 1:
        raise UserError(
            f"the runs in {metrics_root} come from different params files ({', '.join(sorted(found))}); "
            "give --params explicitly"
        )
    return found.pop() if found else "params.yaml"


__all__ = ["spec_from_params", "params_file_of", "FOLDERS"]
