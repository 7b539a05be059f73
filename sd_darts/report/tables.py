"""Tables 1-4 of the paper: the paper's rows (quoted, marked "paper") beside the reproduced ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..paper import TABLE1, TABLE4_COLUMNS, load_table
from .fmt import NOT_RUN, fmt, fmt_pm, produced_by
from .labels import measured_on, not_comparable
from .read import Metrics, Run

#: Labels of the evaluated genotypes (:attr:`RunRef.label <sd_darts.report.spec.RunRef.label>` of a training).
GENOTYPE_LABELS = {
    "selected": "searched by this pipeline",
    "paper": "paper's Fig. 4 genotype",
    "darts": "baseline searched by this pipeline",
}


def architecture(key: str) -> str:
    """The method whose cells a training's genotype ``key`` holds (the DARTS baseline's, or SD-DARTS)."""
    return "DARTS" if key == "darts" else "SD-DARTS"


#: The column naming what a row was measured on (the paper's dataset, or a run's dataset and profile).
ON = "Measured on"


def table1(settings: Mapping[str, Any]) -> pd.DataFrame:
    """Table 1: the paper's hyper-parameters beside the search ``settings`` of this report
    (``SearchConfig`` field names; a missing one is the default, which is the paper's)."""
    rows = []
    for symbol, key, paper_value, meaning in TABLE1:
        value = settings.get(key)
        same = "-" if value is None else ("yes" if _same(value, paper_value) else "no")
        rows.append(
            {
                "Hyperparameter": symbol,
                "Meaning": meaning,
                "Paper": str(paper_value),
                "Setting": key,
                "This config": "(default)" if value is None else str(value),
                "Same as paper": same,
            }
        )
    return pd.DataFrame(rows)


def _same(value: Any, paper_value: int | float) -> bool:
    try:
        return float(value) == float(paper_value)
    except (TypeError, ValueError):
        return False


def search_cost_days(runs: list[Run]) -> float | None:
    """Mean search time of ``runs`` in device-days (the sum of their epochs' seconds)."""
    costs = []
    for r in runs:
        if r.curves is None or "epoch_seconds" not in r.curves.columns:
            return None
        costs.append(float(r.curves["epoch_seconds"].sum()) / 86400.0)
    return sum(costs) / len(costs) if costs else None


def device_kind(runs: list[Run]) -> str:
    kinds = sorted({r.device.split(":")[0].upper() if r.device.startswith("cuda") else r.device.upper() for r in runs})
    return "/".join("GPU" if k == "CUDA" else k for k in kinds)


def train_groups(runs: list[Run]) -> dict[str, list[Run]]:
    """Trainings grouped by genotype label."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.ref.label, []).append(r)
    return groups


def sd_searches(metrics: Metrics) -> list[Run]:
    """The SD-DARTS searches (their cost is the paper's search cost)."""
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
                ON: "CIFAR-10",
                "Test Err. (%)": err,
                "Params (M)": p["params_m"],
                "Search Cost (GPU-days)": p["search_cost_gpu_days"],
                "Search Method": p["search_method"],
                "Source": "paper",
            }
        )
    sd_search = sd_searches(metrics)
    cost = search_cost_days(sd_search)
    cost_text = NOT_RUN if cost is None else f"{cost:.4f} ({device_kind(sd_search)}-days)"
    groups = train_groups(metrics.train_cifar)
    for key in sorted(groups, key=lambda k: (k not in GENOTYPE_LABELS, k)):
        runs = groups[key]
        errors = [float(r.summary["test_error"]) for r in runs]
        label = GENOTYPE_LABELS.get(key, key)
        rows.append(
            {
                "Architecture": f"{architecture(key)} ({label})",
                ON: measured_on(metrics, runs),
                "Test Err. (%)": fmt_pm(errors),
                "Params (M)": fmt(runs[0].summary.get("params_m"), 2),
                "Search Cost (GPU-days)": cost_text if key == "selected" else "-",
                "Search Method": "gradient",
                "Source": "reproduced: " + produced_by("train_cifar", runs) + not_comparable(metrics),
            }
        )
        rows.append(
            {
                "Architecture": f"{architecture(key)} ({label}, best)",
                ON: measured_on(metrics, runs),
                "Test Err. (%)": fmt(min(errors)),
                "Params (M)": fmt(runs[0].summary.get("params_m"), 2),
                "Search Cost (GPU-days)": cost_text if key == "selected" else "-",
                "Search Method": "gradient",
                "Source": "reproduced: " + produced_by("train_cifar", runs) + not_comparable(metrics),
            }
        )
    if not groups:
        rows.append(
            {
                "Architecture": "SD-DARTS (this pipeline)",
                ON: measured_on(metrics, sd_search),
                "Test Err. (%)": NOT_RUN,
                "Params (M)": NOT_RUN,
                "Search Cost (GPU-days)": cost_text,
                "Search Method": "gradient",
                "Source": "reproduced: " + (produced_by("search", sd_search) if sd_search else NOT_RUN),
            }
        )
    return pd.DataFrame(rows)


def imagenet_status_text(metrics: Metrics) -> str:
    st = metrics.imagenet_status or {}
    reason = st.get("reason")
    return f"{NOT_RUN} ({reason})" if reason else NOT_RUN


def table3(metrics: Metrics) -> pd.DataFrame:
    """Table 3 (ImageNet): the paper's rows, then the reproduced ones (or "not run")."""
    paper = load_table("table3")
    rows = []
    for _, p in paper.iterrows():
        rows.append(
            {
                "Architecture": p["architecture"] + (f" {p['ref']}" if p["ref"] else ""),
                ON: "ImageNet",
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
    groups = train_groups(metrics.train_imagenet)
    keys = sorted(set(groups) | {k for k in stats if k in GENOTYPE_LABELS}, key=lambda k: (k not in GENOTYPE_LABELS, k))
    for key in keys:
        runs = groups.get(key, [])
        st = (stats.get(key) or {}).get("imagenet") or {}
        label = GENOTYPE_LABELS.get(key, key)
        sources = []
        if runs:
            sources.append(produced_by("train_imagenet", runs))
        else:
            sources.append("train_imagenet " + imagenet_status_text(metrics))
        if st:
            sources.append("params/×+ counted by genotype stage (sd_darts.evaluation.stats)")
        searched = metrics.searches if key != "paper" else []
        on = (
            measured_on(metrics, runs)
            if runs
            else "not trained; genotype "
            + (f"searched on {measured_on(metrics, searched)}" if key != "paper" else "of the paper")
        )
        rows.append(
            {
                "Architecture": f"{architecture(key)} ({label})",
                ON: on,
                "Top-1 Err. (%)": fmt_pm([float(r.summary["test_error"]) for r in runs]) if runs else NOT_RUN,
                "Top-5 Err. (%)": fmt_pm([float(r.summary["top5_error"]) for r in runs]) if runs else NOT_RUN,
                "Params (M)": fmt(st.get("params_m"), 2)
                if st
                else (fmt(runs[0].summary.get("params_m"), 2) if runs else NOT_RUN),
                "×+ (M)": fmt(st.get("mult_adds_m"), 0) if st else NOT_RUN,
                "Search Cost (GPU-days)": "-",
                "Search Method": "gradient",
                "Source": "reproduced: " + "; ".join(sources) + not_comparable(metrics),
            }
        )
    if not keys:
        rows.append(
            {
                "Architecture": "SD-DARTS (this pipeline)",
                ON: "not trained",
                "Top-1 Err. (%)": NOT_RUN,
                "Top-5 Err. (%)": NOT_RUN,
                "Params (M)": NOT_RUN,
                "×+ (M)": NOT_RUN,
                "Search Cost (GPU-days)": "-",
                "Search Method": "gradient",
                "Source": "reproduced: train_imagenet " + imagenet_status_text(metrics),
            }
        )
    return pd.DataFrame(rows)


def nb201_reason(metrics: Metrics) -> str:
    q = metrics.nb201_query or {}
    if not metrics.nb201_searches and not q:
        return NOT_RUN
    reason = q.get("reason") or "no benchmark query recorded"
    return f"{NOT_RUN} ({reason})"


def nb201_seed_label(metrics: Metrics, entry: dict) -> str:
    """A per-seed row of the query: the search run of its seed and the benchmark index it found."""
    runs = [r.name for r in metrics.nb201_searches if r.seed == entry.get("seed")]
    run = f"nb201_search {runs[0]}" if runs else f"seed {entry.get('seed', '?')}"
    index = entry.get("index")
    return run + ("" if index is None else f", benchmark index {index}")


def table4(metrics: Metrics) -> pd.DataFrame:
    """Table 4 (NAS-Bench-201 accuracy, %): the paper's rows, then the reproduced one (mean ±
    std over the search seeds) and one row per search seed, named by its run and benchmark index."""
    paper = load_table("table4")
    rows = []
    for _, p in paper.iterrows():
        row = {"Method": p["method"] + (f" {p['ref']}" if p["ref"] else ""), ON: "NAS-Bench-201"}
        for key, label in TABLE4_COLUMNS:
            row[label] = f"{p[key]} ± {p[key + '_std']}"
        row["Source"] = "paper"
        rows.append(row)
    q = metrics.nb201_query or {}
    on = f"NAS-Bench-201; searched on {measured_on(metrics, metrics.nb201_searches)}"
    row = {"Method": "SD-DARTS (this pipeline)", ON: on}
    if q.get("status") == "ok":
        for key, label in TABLE4_COLUMNS:
            cell = q["row"][key]
            row[label] = f"{fmt(cell['mean'])} ± {fmt(cell['std'])}"
        row["Source"] = (
            "reproduced: "
            + produced_by("nb201_search", metrics.nb201_searches)
            + f"; benchmark {q.get('benchmark', '?')}"
            + not_comparable(metrics)
        )
        rows.append(row)
        for entry in q.get("per_seed") or []:
            seed_row = {"Method": f"SD-DARTS ({nb201_seed_label(metrics, entry)})", ON: on}
            for key, label in TABLE4_COLUMNS:
                seed_row[label] = fmt(entry[key])
            seed_row["Source"] = f"reproduced: one search seed; arch {entry.get('arch', '?')}"
            rows.append(seed_row)
    else:
        for _, label in TABLE4_COLUMNS:
            row[label] = NOT_RUN
        searched = produced_by("nb201_search", metrics.nb201_searches) if metrics.nb201_searches else "no search"
        row["Source"] = f"{nb201_reason(metrics)}; searched: {searched}"
        rows.append(row)
    return pd.DataFrame(rows)
