"""The paper's tables and figures, regenerated from a folder of collected run metrics.

:func:`build_report` reads a *metrics folder* (small, text-only files that the pipeline
collects from every run: ``metrics/`` in the repository, committed to git) and a params file
(Table 1), and writes ``reports/``:

``README.md``                       every table and figure, the provenance of every run
``table1_hyperparameters.{md,csv}`` Table 1: the paper's values beside the params file's
``table2_cifar10.{md,csv}``         Table 2 (paper rows marked "paper") + reproduced rows
``table3_imagenet.{md,csv}``        Table 3, likewise
``table4_nb201.{md,csv}``           Table 4, likewise
``comparison.{md,csv}``             every reproduced number beside the paper's and the difference
``provenance.{md,csv}``             run, stage, seed, device, git revision of every run used
``fig2_hessian.png``                dominant Hessian eigenvalue per epoch, DARTS vs SD-DARTS
``fig4_cells.png``                  normal and reduction cells of the selected genotype
``fig5_warmup.png``                 accuracy vs warm-up epochs ξ (K = 1)
``fig6_window.png``                 accuracy vs time window K (ξ = 25)
``search_curves.png``               per-epoch search curves of every search run

Anything not run is written as "not run" with the reason; no number is ever invented.  The
output is byte-for-byte reproducible from the same inputs: runs are sorted, floats have fixed
formats, there are no timestamps, and PNGs are written by the Agg backend with fixed size,
dpi, style and no ``Software`` metadata (identical bytes need the same matplotlib/FreeType
versions, which the pinned environment provides).

Metrics folder layout (written by ``pipelines/``; every run folder has ``provenance.json``
``{"stage", "run", "device", "git_rev", "git_dirty", "command"}``):

``search/<method>-s<seed>/``            ``summary.json``, ``curves.tsv``, ``genotype.json``, ``config.yaml``
``genotype/``                           ``selected.json`` (genotype), ``selection.json`` (rule, candidates),
                                        ``stats.json`` (params / mult-adds of the evaluated genotypes)
``train_cifar/<genotype>-s<seed>/``     ``metrics.json``, ``curves.tsv``, ``config.yaml``
``train_imagenet/``                     ``status.json`` (``{"status": "not run", "reason"}``) or
                                        ``<genotype>-s<seed>/metrics.json`` ...
``nasbench201_search/s<seed>/``         as ``search/``
``nasbench201/query.json``              ``{"status": "ok" | "not run", "reason", "benchmark",
                                        "row": {column: {"mean", "std"}}, "per_seed": [{column: value}]}``
``ablation_warmup/xi<ξ>-s<seed>/``      ``point.json`` (``{"parameter", "value", "seed"}``), ``search/``, ``eval/``
``ablation_window/k<K>-s<seed>/``       likewise
"""

from __future__ import annotations

import io as _io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from . import files
from .config import read_yaml_mapping
from .errors import UserError
from .paper import FIGURES, TABLE1, load_table, paper_row

NOT_RUN = "not run"

#: Report files this module writes; any other file of these kinds in the output folder is stale.
_OUTPUT_SUFFIXES = (".md", ".csv", ".png")


# --------------------------------------------------------------------------------------------
# Reading the metrics folder
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Number formatting (fixed, so the report is byte-for-byte reproducible)
# --------------------------------------------------------------------------------------------


def fmt(x: float | None, digits: int = 2) -> str:
    """Fixed-point text of ``x``; ``-0.00`` is written ``0.00``; None/NaN is ``-``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    text = f"{float(x):.{digits}f}"
    if text.lstrip("-").strip("0.") == "":
        text = text.lstrip("-")
    return text


def fmt_signed(x: float | None, digits: int = 2) -> str:
    text = fmt(x, digits)
    return text if text in ("-",) or text.startswith("-") or float(text) == 0 else "+" + text


def mean_std(values: Iterable[float]) -> tuple[float, float | None, int]:
    """Mean, sample standard deviation (ddof=1; None for one value) and count."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values")
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, None, 1
    var = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    return m, math.sqrt(var), len(vals)


def fmt_pm(values: Iterable[float], digits: int = 2) -> str:
    m, s, _ = mean_std(values)
    return fmt(m, digits) if s is None else f"{fmt(m, digits)} ± {fmt(s, digits)}"


def _paper_float(text: str) -> float | None:
    try:
        return float(str(text).strip().lstrip("~"))
    except ValueError:
        return None


def _seeds(runs: list[Run]) -> str:
    seeds = sorted({r.seed for r in runs if r.seed is not None})
    return ",".join(str(s) for s in seeds) if seeds else "?"


def _produced_by(stage: str, runs: list[Run]) -> str:
    """'<stage> <runs> (seeds …; device …; git …)' for a group of runs."""
    if not runs:
        return NOT_RUN
    devices = ",".join(sorted({r.device for r in runs}))
    gits = ",".join(sorted({r.git for r in runs}))
    names = ",".join(r.name for r in runs)
    return f"{stage} {names} (seeds {_seeds(runs)}; device {devices}; git {gits})"


def _md_table(df: pd.DataFrame) -> str:
    from tabulate import tabulate

    return (
        tabulate(df.values.tolist(), headers=list(df.columns), tablefmt="pipe", disable_numparse=True, stralign="left")
        + "\n"
    )


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def table1(params: dict[str, Any]) -> pd.DataFrame:
    """Table 1: the paper's hyper-parameters beside the params file's ``search`` section."""
    search = params.get("search") or {}
    rows = []
    for symbol, key, paper_value, meaning in TABLE1:
        value = search.get(key)
        rows.append(
            {
                "Hyperparameter": symbol,
                "Meaning": meaning,
                "Paper": str(paper_value),
                "params.yaml key": f"search.{key}",
                "This config": "(default)" if value is None else str(value),
                "Same as paper": "-" if value is None else ("yes" if float(value) == float(paper_value) else "no"),
            }
        )
    return pd.DataFrame(rows)


def _search_cost_days(runs: list[Run]) -> float | None:
    costs = []
    for r in runs:
        if r.curves is None or "epoch_seconds" not in r.curves.columns:
            return None
        costs.append(float(r.curves["epoch_seconds"].sum()) / 86400.0)
    return sum(costs) / len(costs) if costs else None


def _device_kind(runs: list[Run]) -> str:
    kinds = sorted({r.device.split(":")[0].upper() if r.device.startswith("cuda") else r.device.upper() for r in runs})
    return "/".join("GPU" if k == "CUDA" else k for k in kinds)


def _train_groups(metrics: Metrics) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for r in metrics.train_cifar:
        key = r.name.rsplit("-s", 1)[0]
        groups.setdefault(key, []).append(r)
    return groups


#: Labels of the evaluated genotypes (the ``<genotype>`` part of ``train_cifar/<genotype>-s<seed>``).
GENOTYPE_LABELS = {
    "selected": "searched by this pipeline",
    "paper": "paper's Fig. 4 genotype",
}


def _reproduced_search_runs(metrics: Metrics) -> list[Run]:
    return [r for r in metrics.searches if r.summary.get("method") == "sd-darts"]


def table2(metrics: Metrics) -> pd.DataFrame:
    """Table 2 (CIFAR-10): the paper's rows, then the rows reproduced by this pipeline."""
    paper = load_table("table2")
    rows = []
    for _, p in paper.iterrows():
        err = p["test_error"] + (f" ± {p['test_error_std']}" if p["test_error_std"] else "")
        rows.append(
            {
                "Architecture": p["architecture"] + (f" {p['ref']}" if p["ref"] else ""),
                "Test Err. (%)": err,
                "Params (M)": p["params_m"],
                "Search Cost (GPU-days)": p["search_cost_gpu_days"],
                "Search Method": p["search_method"],
                "Source": "paper",
            }
        )
    sd_search = _reproduced_search_runs(metrics)
    cost = _search_cost_days(sd_search)
    cost_text = NOT_RUN if cost is None else f"{cost:.4f} ({_device_kind(sd_search)}-days)"
    groups = _train_groups(metrics)
    for key in sorted(groups, key=lambda k: (k not in GENOTYPE_LABELS, k)):
        runs = groups[key]
        errors = [float(r.summary["test_error"]) for r in runs]
        label = GENOTYPE_LABELS.get(key, key)
        rows.append(
            {
                "Architecture": f"SD-DARTS ({label})",
                "Test Err. (%)": fmt_pm(errors),
                "Params (M)": fmt(runs[0].summary.get("params_m"), 2),
                "Search Cost (GPU-days)": cost_text if key == "selected" else "-",
                "Search Method": "gradient",
                "Source": "reproduced: " + _produced_by("train_cifar", runs),
            }
        )
        rows.append(
            {
                "Architecture": f"SD-DARTS ({label}, best)",
                "Test Err. (%)": fmt(min(errors)),
                "Params (M)": fmt(runs[0].summary.get("params_m"), 2),
                "Search Cost (GPU-days)": cost_text if key == "selected" else "-",
                "Search Method": "gradient",
                "Source": "reproduced: " + _produced_by("train_cifar", runs),
            }
        )
    if not groups:
        rows.append(
            {
                "Architecture": "SD-DARTS (this pipeline)",
                "Test Err. (%)": NOT_RUN,
                "Params (M)": NOT_RUN,
                "Search Cost (GPU-days)": cost_text,
                "Search Method": "gradient",
                "Source": "reproduced: " + (_produced_by("search", sd_search) if sd_search else NOT_RUN),
            }
        )
    return pd.DataFrame(rows)


def _imagenet_status_text(metrics: Metrics) -> str:
    st = metrics.imagenet_status or {}
    reason = st.get("reason")
    return f"{NOT_RUN} ({reason})" if reason else NOT_RUN


FIG4_READING_NOTE = (
    "The paper's Fig. 4 genotype (`SD_DARTS`) was read from a flattened figure: the two skip "
    "connections of the reduction cell are taken from node 0, the only reading whose network sizes "
    "round to the paper's 3.3M (CIFAR-10) and 4.7M (ImageNet) parameters; it counts 526M mult-adds at "
    "224x224 (conv and linear MACs, torch.utils.flop_counter) against the paper's 534M, while the "
    "reading that gives 534M has 3.37M / 4.83M parameters. Every reading is documented in "
    "`sd_darts/genotypes.py`."
)


def table3(metrics: Metrics) -> pd.DataFrame:
    """Table 3 (ImageNet): the paper's rows, then the reproduced ones (or "not run")."""
    paper = load_table("table3")
    rows = []
    for _, p in paper.iterrows():
        rows.append(
            {
                "Architecture": p["architecture"] + (f" {p['ref']}" if p["ref"] else ""),
                "Top-1 Err. (%)": p["top1_error"],
                "Top-5 Err. (%)": p["top5_error"],
                "Params (M)": p["params_m"],
                "×+ (M)": p["mult_adds_m"],
                "Search Cost (GPU-days)": p["search_cost_gpu_days"],
                "Search Method": p["search_method"],
                "Source": "paper",
            }
        )
    stats = metrics.genotype_stats or {}
    groups: dict[str, list[Run]] = {}
    for r in metrics.train_imagenet:
        groups.setdefault(r.name.rsplit("-s", 1)[0], []).append(r)
    keys = sorted(set(groups) | {k for k in stats if k in GENOTYPE_LABELS}, key=lambda k: (k not in GENOTYPE_LABELS, k))
    for key in keys:
        runs = groups.get(key, [])
        st = (stats.get(key) or {}).get("imagenet") or {}
        label = GENOTYPE_LABELS.get(key, key)
        sources = []
        if runs:
            sources.append(_produced_by("train_imagenet", runs))
        else:
            sources.append("train_imagenet " + _imagenet_status_text(metrics))
        if st:
            sources.append("params/×+ counted by genotype stage (sd_darts.stats)")
        rows.append(
            {
                "Architecture": f"SD-DARTS ({label})",
                "Top-1 Err. (%)": fmt_pm([float(r.summary["test_error"]) for r in runs]) if runs else NOT_RUN,
                "Top-5 Err. (%)": fmt_pm([float(r.summary["top5_error"]) for r in runs]) if runs else NOT_RUN,
                "Params (M)": fmt(st.get("params_m"), 2)
                if st
                else (fmt(runs[0].summary.get("params_m"), 2) if runs else NOT_RUN),
                "×+ (M)": fmt(st.get("mult_adds_m"), 0) if st else NOT_RUN,
                "Search Cost (GPU-days)": "-",
                "Search Method": "gradient",
                "Source": "reproduced: " + "; ".join(sources),
            }
        )
    if not keys:
        rows.append(
            {
                "Architecture": "SD-DARTS (this pipeline)",
                "Top-1 Err. (%)": NOT_RUN,
                "Top-5 Err. (%)": NOT_RUN,
                "Params (M)": NOT_RUN,
                "×+ (M)": NOT_RUN,
                "Search Cost (GPU-days)": "-",
                "Search Method": "gradient",
                "Source": "reproduced: train_imagenet " + _imagenet_status_text(metrics),
            }
        )
    return pd.DataFrame(rows)


NB201_COLUMNS = [
    ("cifar10_valid", "CIFAR-10 valid"),
    ("cifar10_test", "CIFAR-10 test"),
    ("cifar100_valid", "CIFAR-100 valid"),
    ("cifar100_test", "CIFAR-100 test"),
    ("imagenet16_valid", "ImageNet16-120 valid"),
    ("imagenet16_test", "ImageNet16-120 test"),
]


def _nb201_reason(metrics: Metrics) -> str:
    q = metrics.nb201_query or {}
    if not metrics.nb201_searches and not q:
        return NOT_RUN
    reason = q.get("reason") or "no benchmark query recorded"
    return f"{NOT_RUN} ({reason})"


def table4(metrics: Metrics) -> pd.DataFrame:
    """Table 4 (NAS-Bench-201 accuracy, %): the paper's rows, then the reproduced one."""
    paper = load_table("table4")
    rows = []
    for _, p in paper.iterrows():
        row = {"Method": p["method"] + (f" {p['ref']}" if p["ref"] else "")}
        for key, label in NB201_COLUMNS:
            row[label] = f"{p[key]} ± {p[key + '_std']}"
        row["Source"] = "paper"
        rows.append(row)
    q = metrics.nb201_query or {}
    row = {"Method": "SD-DARTS (this pipeline)"}
    if q.get("status") == "ok":
        for key, label in NB201_COLUMNS:
            cell = q["row"][key]
            row[label] = f"{fmt(cell['mean'])} ± {fmt(cell['std'])}"
        row["Source"] = (
            "reproduced: "
            + _produced_by("nasbench201", metrics.nb201_searches)
            + f"; benchmark {q.get('benchmark', '?')}"
        )
    else:
        for _, label in NB201_COLUMNS:
            row[label] = NOT_RUN
        searched = _produced_by("nasbench201", metrics.nb201_searches) if metrics.nb201_searches else "no search"
        row["Source"] = f"{_nb201_reason(metrics)}; searched: {searched}"
    rows.append(row)
    return pd.DataFrame(rows)


def comparison(metrics: Metrics) -> pd.DataFrame:
    """Every headline number of the paper beside the reproduced one and the difference."""
    rows = []

    def add(
        quantity: str,
        paper_text: str,
        values: list[float] | None,
        produced: str,
        digits: int = 2,
        summary: tuple[float, float] | None = None,
    ):
        """``values``: per-run numbers (mean ± sample std), or ``summary``: a given (mean, std)."""
        paper_value = _paper_float(paper_text.split("±")[0]) if paper_text else None
        if summary is not None:
            m = summary[0]
            rep = f"{fmt(summary[0], digits)} ± {fmt(summary[1], digits)}"
        elif values:
            m, _s, _n = mean_std(values)
            rep = fmt_pm(values, digits)
        else:
            m, rep = None, NOT_RUN
        diff = fmt_signed(m - paper_value, digits) if m is not None and paper_value is not None else "-"
        rows.append(
            {
                "Quantity": quantity,
                "Paper": paper_text or "-",
                "Reproduced": rep,
                "Difference (reproduced - paper)": diff,
                "Produced by": produced,
            }
        )

    t2 = paper_row("table2")
    t2best = paper_row("table2", "sd-darts-best")
    groups = _train_groups(metrics)
    sel = groups.get("selected", [])
    add(
        "CIFAR-10 test error (%), searched genotype",
        f"{t2['test_error']} ± {t2['test_error_std']}",
        [float(r.summary["test_error"]) for r in sel],
        _produced_by("train_cifar", sel),
    )
    add(
        "CIFAR-10 best test error (%), searched genotype",
        t2best["test_error"],
        [min(float(r.summary["test_error"]) for r in sel)] if sel else None,
        _produced_by("train_cifar", sel),
    )
    pap = groups.get("paper", [])
    add(
        "CIFAR-10 test error (%), paper's Fig. 4 genotype",
        f"{t2['test_error']} ± {t2['test_error_std']}",
        [float(r.summary["test_error"]) for r in pap],
        _produced_by("train_cifar", pap),
    )
    add(
        "CIFAR-10 params (M), searched genotype as trained",
        t2["params_m"],
        [float(sel[0].summary["params_m"])] if sel else None,
        _produced_by("train_cifar", sel[:1]),
    )
    cst = ((metrics.genotype_stats or {}).get("selected") or {}).get("cifar") or {}
    add(
        f"CIFAR-10 params (M), searched genotype at C={cst.get('init_channels', 36)}, {cst.get('layers', 20)} cells",
        t2["params_m"],
        [float(cst["params_m"])] if cst else None,
        "genotype stage (sd_darts.stats)" if cst else NOT_RUN,
    )
    sd_search = _reproduced_search_runs(metrics)
    cost = _search_cost_days(sd_search)
    add(
        f"search cost ({_device_kind(sd_search) or 'GPU'}-days; paper: GPU-days)",
        t2["search_cost_gpu_days"],
        [cost] if cost is not None else None,
        _produced_by("search", sd_search),
        digits=4,
    )

    t3 = paper_row("table3")
    im = [r for r in metrics.train_imagenet if r.name.startswith("selected")]
    im_produced = _produced_by("train_imagenet", im) if im else "train_imagenet " + _imagenet_status_text(metrics)
    add("ImageNet top-1 error (%)", t3["top1_error"], [float(r.summary["test_error"]) for r in im], im_produced)
    add("ImageNet top-5 error (%)", t3["top5_error"], [float(r.summary["top5_error"]) for r in im], im_produced)
    st = ((metrics.genotype_stats or {}).get("selected") or {}).get("imagenet") or {}
    add(
        "ImageNet params (M), searched genotype",
        t3["params_m"],
        [float(st["params_m"])] if st else None,
        "genotype stage (sd_darts.stats)" if st else NOT_RUN,
    )
    add(
        "ImageNet ×+ (M), searched genotype",
        t3["mult_adds_m"],
        [float(st["mult_adds_m"])] if st else None,
        "genotype stage (sd_darts.stats)" if st else NOT_RUN,
        digits=0,
    )

    t4 = paper_row("table4")
    q = metrics.nb201_query or {}
    nb_produced = (
        _produced_by("nasbench201", metrics.nb201_searches) if q.get("status") == "ok" else _nb201_reason(metrics)
    )
    for key, label in NB201_COLUMNS:
        cell = (q.get("row") or {}).get(key) if q.get("status") == "ok" else None
        add(
            f"NAS-Bench-201 {label} accuracy (%)",
            f"{t4[key]} ± {t4[key + '_std']}",
            None,
            nb_produced,
            summary=(float(cell["mean"]), float(cell["std"])) if cell else None,
        )
    return pd.DataFrame(rows)


def provenance(metrics: Metrics) -> pd.DataFrame:
    rows = []
    for stage, r in metrics.all_runs():
        rows.append(
            {
                "Stage": stage,
                "Run": str(r.path.relative_to(metrics.root)),
                "Seed": "-" if r.seed is None else str(r.seed),
                "Device": r.device,
                "Git revision": r.git,
                "Command": str(r.provenance.get("command", "-")),
            }
        )
    return pd.DataFrame(rows, columns=["Stage", "Run", "Seed", "Device", "Git revision", "Command"])


# --------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg, deterministic bytes)
# --------------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _style():
    import matplotlib

    # Ignore any user matplotlibrc: the same inputs give the same pixels everywhere.
    params = dict(matplotlib.rcParamsDefault)
    params.update(
        {
            "font.size": 9,
            "axes.titlesize": 10,
            "svg.hashsalt": "sd-darts",
            "path.simplify": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    )
    return matplotlib.rc_context(params)


def _save(fig, path: Path) -> None:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    with files.atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _not_run_axes(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


METHOD_COLORS = {"darts": "tab:blue", "sd-darts": "tab:red"}
_LINESTYLES = ("-", "--", ":", "-.")


def _linestyle(seed: int | None) -> str:
    return _LINESTYLES[(seed or 0) % len(_LINESTYLES)]


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def fig2_hessian(metrics: Metrics, path: Path) -> str:
    """Fig. 2: dominant eigenvalue of the alpha Hessian per epoch, DARTS vs SD-DARTS."""
    with _style():
        fig = _figure(6.0, 3.6)
        ax = fig.add_subplot(1, 1, 1)
        plotted = 0
        for r in metrics.searches:
            c = r.curves
            if c is None or "hessian/eigenvalue" not in c.columns:
                continue
            d = c[["epoch", "hessian/eigenvalue"]].dropna()
            if d.empty:
                continue
            method = str(r.summary.get("method", "?"))
            ax.plot(
                d["epoch"] + 1,
                d["hessian/eigenvalue"],
                marker="o",
                ms=3,
                lw=1.2,
                color=METHOD_COLORS.get(method),
                linestyle=_linestyle(r.seed),
                label=f"{method} (seed {r.seed})",
            )
            plotted += 1
        if plotted:
            _integer_epochs(ax)
            ax.set_xlabel("Epoch")
            ax.set_ylabel("Dominant eigenvalue of the Hessian (alphas)")
            ax.legend(fontsize=7)
            status = f"{plotted} search run(s)"
        else:
            status = NOT_RUN + " (no search run recorded hessian/eigenvalue; set search.hessian_every)"
            _not_run_axes(ax, status)
        ax.set_title("Fig. 2: sharpness of the supernet, DARTS vs SD-DARTS")
        fig.tight_layout()
        _save(fig, path)
    return status


def _draw_cell(ax, edges: list[list[Any]], concat: list[int], title: str) -> None:
    """Draw one DARTS cell as DARTS's own plots do: inputs c_{k-2}, c_{k-1} on the left, the
    intermediate nodes in a column, the output c_{k} (concatenation) on the right."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    steps = len(edges) // 2
    top = 1.5 * (steps - 1)
    pos: dict[int, tuple[float, float]] = {0: (0.0, top * 0.8), 1: (0.0, top * 0.2)}
    for i in range(steps):
        pos[i + 2] = (4.0, top - 1.5 * i)
    out_pos = (7.6, top / 2)
    names = {0: "c_{k-2}", 1: "c_{k-1}"}
    names.update({i + 2: str(i) for i in range(steps)})

    def node(xy, text, color):
        w, h = (1.3, 0.6) if text.startswith("c_") else (0.6, 0.6)
        ax.add_patch(
            FancyBboxPatch(
                (xy[0] - w / 2, xy[1] - h / 2), w, h, boxstyle="round,pad=0.04", fc=color, ec="black", lw=0.8, zorder=3
            )
        )
        label = f"${text}$" if text.startswith("c_") else text
        ax.text(xy[0], xy[1], label, ha="center", va="center", fontsize=9, zorder=4)

    for n in concat:
        ax.add_patch(
            FancyArrowPatch(
                pos[int(n)],
                out_pos,
                arrowstyle="-|>",
                mutation_scale=9,
                lw=0.6,
                shrinkA=11,
                shrinkB=22,
                color="0.65",
                zorder=1,
            )
        )
    for k, (op, src) in enumerate(edges):
        src, dst = int(src), k // 2 + 2
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        if src in (0, 1):
            rad, t = 0.0, (0.68 if src == 0 else 0.4)  # straight; labels of the two inputs apart
        else:
            rad, t = -0.55 - 0.1 * (dst - src), 0.5  # node-to-node: arcs bowing to the right
        ax.add_patch(
            FancyArrowPatch(
                (x1, y1),
                (x2, y2),
                arrowstyle="-|>",
                mutation_scale=10,
                lw=0.9,
                connectionstyle=f"arc3,rad={rad}",
                shrinkA=12,
                shrinkB=12,
                color="0.2",
                zorder=2,
            )
        )
        # Point at parameter t of the quadratic Bezier curve that arc3 draws.
        cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
        mx = (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t**2 * x2
        my = (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t**2 * y2
        ax.text(
            mx,
            my,
            str(op),
            ha="center",
            va="center",
            fontsize=6.5,
            zorder=5,
            bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="0.8", lw=0.4),
        )
    for n, xy in pos.items():
        node(xy, names[n], "#b7e4c7" if n < 2 else "#a9d6f5")
    node(out_pos, "c_{k}", "#ffe8a3")
    ax.set_xlim(-1.0, out_pos[0] + 1.0)
    ax.set_ylim(-0.8, top + 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)


def fig4_cells(genotype: dict[str, Any] | None, path: Path, source: str) -> str:
    """Fig. 4: the normal and reduction cells of a DARTS genotype (drawn with matplotlib)."""
    with _style():
        fig = _figure(11.0, 4.6)
        if genotype is None or genotype.get("space") != "darts":
            ax = fig.add_subplot(1, 1, 1)
            status = f"{NOT_RUN} (no DARTS-space genotype selected)"
            _not_run_axes(ax, status)
        else:
            ax1 = fig.add_subplot(1, 2, 1)
            ax2 = fig.add_subplot(1, 2, 2)
            _draw_cell(ax1, genotype["normal"], genotype["normal_concat"], "(a) Normal cell")
            _draw_cell(ax2, genotype["reduce"], genotype["reduce_concat"], "(b) Reduction cell")
            status = source
        fig.suptitle(f"Fig. 4: cells of {source}", fontsize=10)
        fig.tight_layout()
        _save(fig, path)
    return status


def _ablation_figure(points: list[AblationPoint], path: Path, title: str, xlabel: str, paper_note: str) -> str:
    with _style():
        fig = _figure(5.6, 3.6)
        ax = fig.add_subplot(1, 1, 1)
        done = [p for p in points if p.eval is not None]
        if done:
            by_value: dict[int, list[float]] = {}
            for p in done:
                by_value.setdefault(p.value, []).append(100.0 - float(p.eval.summary["test_error"]))
            xs = sorted(by_value)
            stats = [mean_std(by_value[x]) for x in xs]
            ax.errorbar(
                xs,
                [s[0] for s in stats],
                yerr=[s[1] or 0.0 for s in stats],
                marker="o",
                capsize=3,
                color="tab:red",
                label="this pipeline (mean ± std over seeds)",
            )
            for p in done:
                ax.scatter([p.value], [100.0 - float(p.eval.summary["test_error"])], s=8, color="0.4", zorder=3)
            ax.set_xticks(xs)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("Test accuracy (%)")
            ax.legend(fontsize=7)
            missing = len(points) - len(done)
            status = f"{len(done)} point(s)" + (f", {missing} without evaluation" if missing else "")
        else:
            status = NOT_RUN
            _not_run_axes(ax, NOT_RUN)
        ax.set_title(title)
        fig.text(0.01, 0.01, f"paper: {paper_note}", fontsize=6.5, color="0.35")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        _save(fig, path)
    return status


CURVE_PANELS = [
    ("valid/acc", "supernet validation accuracy (%)"),
    ("train/loss", "training loss"),
    ("kd_loss", "KD loss (λ-free)"),
    ("num_skip_connect", "skip_connect in the genotype"),
]


def search_curves(runs: list[Run], path: Path, title: str) -> str:
    with _style():
        fig = _figure(9.0, 6.0)
        axes = [fig.add_subplot(2, 2, i + 1) for i in range(4)]
        with_curves = [r for r in runs if r.curves is not None]
        for ax, (col, label) in zip(axes, CURVE_PANELS):
            for r in with_curves:
                if col in r.curves.columns:
                    method = str(r.summary.get("method", "?"))
                    ax.plot(
                        r.curves["epoch"] + 1,
                        r.curves[col],
                        lw=1.0,
                        color=METHOD_COLORS.get(method),
                        linestyle=_linestyle(r.seed),
                        alpha=0.85,
                        label=f"{method} s{r.seed}",
                    )
            ax.set_title(label)
            ax.set_xlabel("Epoch")
            _integer_epochs(ax)
        if with_curves:
            axes[0].legend(fontsize=6)
            status = f"{len(with_curves)} run(s)"
        else:
            status = NOT_RUN
            for ax in axes:
                _not_run_axes(ax, NOT_RUN)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        _save(fig, path)
    return status


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _write_table(out: Path, stem: str, df: pd.DataFrame) -> str:
    md = _md_table(df)
    files.write_text(out / f"{stem}.md", md)
    files.write_text(out / f"{stem}.csv", df.to_csv(index=False, lineterminator="\n"))
    return md


def _selection_text(metrics: Metrics) -> str:
    sel = metrics.selection
    if not sel:
        return f"Genotype selection: {NOT_RUN}."
    lines = [f"Selection rule: {sel.get('rule', '?')}", "", f"Selected: `{sel.get('selected', '?')}`", ""]
    cands = sel.get("candidates") or []
    if cands:
        df = pd.DataFrame([{k: (fmt(v) if isinstance(v, float) else str(v)) for k, v in c.items()} for c in cands])
        lines.append(_md_table(df))
    return "\n".join(lines)


def params_file_of(metrics_dir: str | Path) -> str:
    """The params file that produced the metrics, from their runs' ``provenance.json``
    (``params_file``: ``params.yaml``, or the committed profile it was a copy of); the
    report of committed metrics is regenerated with it.  Raises if the runs disagree."""
    found = set()
    for prov in sorted(Path(metrics_dir).rglob("provenance.json")):
        value = (files.read_json(prov, what="metrics file") or {}).get("params_file")
        if value:
            found.add(str(value))
    if len(found) > 1:
        raise UserError(
            f"the runs in {metrics_dir} come from different params files ({', '.join(sorted(found))}); "
            "give --params explicitly"
        )
    return found.pop() if found else "params.yaml"


def _fixed_setting(points: list[AblationPoint], key: str) -> str:
    """The value of the setting held fixed across an ablation's points (from their configs)."""
    values = sorted({str(p.search.config.get(key)) for p in points if p.search is not None and key in p.search.config})
    return ", ".join(values) if values else "?"


def build_report(metrics_dir: str | Path, params_file: str | Path, out_dir: str | Path) -> list[Path]:
    """Regenerate every table and figure in ``out_dir`` from ``metrics_dir`` and ``params_file``.

    Returns the written files (sorted).  Stale report files (``.md``, ``.csv``, ``.png``) left
    in ``out_dir`` by an earlier report are removed.
    """
    params_path = Path(params_file)
    params = read_yaml_mapping(params_path)
    metrics = load_metrics(metrics_dir, expected_runs(params))
    out = files.check_writable_dir(out_dir, "--out")
    out.mkdir(parents=True, exist_ok=True)
    profile = str(params.get("profile", "paper"))
    report_cfg = params.get("report") or {}
    title = str(report_cfg.get("title", "SD-DARTS reproduction report"))

    written: list[Path] = []
    tables = {}
    for stem, df in (
        ("table1_hyperparameters", table1(params)),
        ("table2_cifar10", table2(metrics)),
        ("table3_imagenet", table3(metrics)),
        ("table4_nb201", table4(metrics)),
        ("comparison", comparison(metrics)),
        ("provenance", provenance(metrics)),
    ):
        tables[stem] = _write_table(out, stem, df)
        written += [out / f"{stem}.md", out / f"{stem}.csv"]

    k_fixed = _fixed_setting(metrics.ablation_warmup, "window")
    xi_fixed = _fixed_setting(metrics.ablation_window, "warmup_epochs")
    sel_source = "no genotype selected"
    if metrics.selection:
        sel_source = f"the genotype selected from run {metrics.selection.get('selected', '?')}"
    fig_status = {
        "fig2_hessian.png": fig2_hessian(metrics, out / "fig2_hessian.png"),
        "fig4_cells.png": fig4_cells(metrics.selected_genotype, out / "fig4_cells.png", sel_source),
        "fig5_warmup.png": _ablation_figure(
            metrics.ablation_warmup,
            out / "fig5_warmup.png",
            f"Fig. 5: effect of the warm-up ξ (K = {k_fixed})",
            "Warm-up epochs ξ",
            FIGURES["fig5"],
        ),
        "fig6_window.png": _ablation_figure(
            metrics.ablation_window,
            out / "fig6_window.png",
            f"Fig. 6: effect of the time window K (ξ = {xi_fixed})",
            "Time window K",
            FIGURES["fig6"],
        ),
        "search_curves.png": search_curves(metrics.searches, out / "search_curves.png", "Search curves (DARTS space)"),
    }
    if metrics.nb201_searches:
        fig_status["search_curves_nb201.png"] = search_curves(
            metrics.nb201_searches, out / "search_curves_nb201.png", "Search curves (NAS-Bench-201 space)"
        )
    written += [out / name for name in fig_status]

    profile_line = (
        "Profile: **paper** (params.yaml defaults: the paper's settings)."
        if profile == "paper"
        else f"Profile: **{profile}** — these numbers come from the `{profile}` profile (tiny networks, few "
        "epochs, small data); they show that the pipeline runs end to end and are NOT comparable to the paper's."
    )
    q = metrics.nb201_query or {}
    lines = [
        f"# {title}",
        "",
        "Regenerated by `sd-darts report` (the `report` stage of `dvc repro`) from the metrics folder "
        f"`{Path(metrics_dir).as_posix()}`; do not edit by hand.",
        "",
        profile_line,
        "",
        "Numbers marked **paper** are quoted from Zhu et al. (2023) (Tables 2-4 transcribed in "
        "`sd_darts/paper/`); rows marked **reproduced** come from this pipeline's runs, with the run, seeds, "
        f'device and git revision that produced them. "{NOT_RUN}" means the stage did not run; no number is '
        "ever filled in.",
        "",
    ]
    if metrics.ignored:
        lines += [
            f"Not reported (run folders in `{Path(metrics_dir).as_posix()}` that these params do not make, e.g. "
            "left by another profile): " + ", ".join(f"`{name}`" for name in metrics.ignored) + ".",
            "",
        ]
    lines += [
        "## Table 1: hyper-parameters of SD-DARTS",
        "",
        tables["table1_hyperparameters"],
        "## Table 2: CIFAR-10",
        "",
        tables["table2_cifar10"],
        "## Table 3: ImageNet",
        "",
        f"ImageNet training: {_imagenet_status_text(metrics) if not metrics.train_imagenet else 'run'}.",
        "",
        FIG4_READING_NOTE,
        "",
        tables["table3_imagenet"],
        "## Table 4: NAS-Bench-201",
        "",
        f"Benchmark query: {'ok (' + str(q.get('benchmark', '?')) + ')' if q.get('status') == 'ok' else _nb201_reason(metrics)}.",
        "",
        tables["table4_nb201"],
        "## Reproduced vs paper",
        "",
        tables["comparison"],
        "## Genotype selection",
        "",
        _selection_text(metrics),
        "",
        "## Figures",
        "",
    ]
    captions = {
        "fig2_hessian.png": "Fig. 2: dominant eigenvalue of the Hessian of the validation loss w.r.t. the alphas",
        "fig4_cells.png": "Fig. 4: searched normal and reduction cells",
        "fig5_warmup.png": f"Fig. 5: test accuracy vs warm-up epochs ξ (K = {k_fixed}; paper: K = 1)",
        "fig6_window.png": f"Fig. 6: test accuracy vs time window K (ξ = {xi_fixed}; paper: ξ = 25)",
        "search_curves.png": "Per-epoch search curves (DARTS space)",
        "search_curves_nb201.png": "Per-epoch search curves (NAS-Bench-201 space)",
    }
    for name, status in fig_status.items():
        lines += [f"### {captions[name]}", "", f"Status: {status}.", "", f"![{captions[name]}]({name})", ""]
    lines += ["## Provenance of every run", "", tables["provenance"]]
    text = "\n".join(lines).rstrip("\n") + "\n"
    files.write_text(out / "README.md", text)
    written.append(out / "README.md")

    keep = {p.name for p in written}
    for stale in sorted(out.iterdir()):
        if stale.is_file() and stale.suffix in _OUTPUT_SUFFIXES and stale.name not in keep:
            stale.unlink()
    return sorted(written)


__all__ = [
    "NOT_RUN",
    "Run",
    "Metrics",
    "load_metrics",
    "build_report",
    "table1",
    "table2",
    "table3",
    "table4",
    "comparison",
    "provenance",
    "fig2_hessian",
    "fig4_cells",
    "search_curves",
    "fmt",
    "fmt_pm",
    "mean_std",
]
