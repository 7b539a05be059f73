"""DARTS against SD-DARTS as this pipeline measured them, with published results on the dataset.

One row per searched method: its searches (supernet accuracy, skip-connects, final Hessian
eigenvalue; mean ± std over seeds) and the trainings of its genotype from scratch (``selected``
for the selected method, ``darts`` for the DARTS baseline).  Then the dataset's published
results (:mod:`.baselines`), marked as quoted.  :func:`verdict` states in words what the rows
show, whichever way it goes.
"""

from __future__ import annotations

import pandas as pd

from .baselines import QUOTED, SOURCES
from .fmt import NOT_RUN, fmt, fmt_pm, mean_std, produced_by
from .labels import DATASET_NAMES, measured_on, run_dataset
from .read import Metrics, Run, final_eigenvalue
from .tables import ON, train_groups

METHOD_NAMES = {"darts": "DARTS", "sd-darts": "SD-DARTS"}


def _pm(values: list[float], digits: int = 2) -> str:
    return fmt_pm(values, digits) if values else NOT_RUN


def _summary_values(runs: list[Run], key: str) -> list[float]:
    """``key`` of every run's summary that records it (older runs may not)."""
    return [float(r.summary[key]) for r in runs if r.summary.get(key) is not None]


def method_runs(metrics: Metrics) -> dict[str, tuple[list[Run], list[Run]]]:
    """method → (its searches, the trainings of its genotype)."""
    groups = train_groups(metrics.train_cifar)
    selected = (metrics.selection or {}).get("selected", "")
    out = {}
    for method in sorted({str(r.summary["method"]) for r in metrics.searches}):
        searches = [r for r in metrics.searches if r.summary["method"] == method]
        key = "darts" if method == "darts" else ("selected" if selected.startswith(f"{method}-s") else None)
        out[method] = (searches, groups.get(key, []) if key else [])
    return out


def methods(metrics: Metrics) -> pd.DataFrame:
    """The measured rows of both methods, then the dataset's quoted results."""
    rows = []
    for method, (searches, trainings) in method_runs(metrics).items():
        eig = [e for e in (final_eigenvalue(r.curves) for r in searches) if e is not None]
        errors = [float(r.summary["test_error"]) for r in trainings]
        produced = [produced_by("search", searches)] + ([produced_by("train_cifar", trainings)] if trainings else [])
        rows.append(
            {
                "Method": METHOD_NAMES.get(method, method),
                ON: measured_on(metrics, searches + trainings),
                "Searches": str(len(searches)),
                "Supernet valid acc. (%)": _pm(_summary_values(searches, "supernet_valid_acc")),
                "Skip-connects": _pm(_summary_values(searches, "num_skip_connect"), 1),
                "Final eigenvalue": _pm(eig, 4),
                "Test err. (%)": _pm(errors),
                "Test acc.": fmt(1 - mean_std(errors)[0] / 100, 4) if errors else NOT_RUN,
                "Params (M)": fmt(trainings[0].summary.get("params_m"), 3) if trainings else NOT_RUN,
                "Source": "measured: " + "; ".join(produced),
            }
        )
    datasets = {d[0] for d in map(run_dataset, metrics.all_runs()) if d is not None} or {metrics.spec.dataset}
    for dataset in sorted(d for d in datasets if d in QUOTED):
        for name, preprocessing, accuracy in QUOTED[dataset]:
            rows.append(
                {
                    "Method": f"{name} ({preprocessing})",
                    ON: DATASET_NAMES.get(dataset, dataset),
                    "Searches": "-",
                    "Supernet valid acc. (%)": "-",
                    "Skip-connects": "-",
                    "Final eigenvalue": "-",
                    "Test err. (%)": fmt(100 * (1 - accuracy), 1),
                    "Test acc.": fmt(accuracy, 3),
                    "Params (M)": "-",
                    "Source": SOURCES[dataset],
                }
            )
    return pd.DataFrame(rows)


def verdict(metrics: Metrics) -> str:
    """One paragraph: is SD-DARTS flatter (lower final eigenvalue) and better (lower test error)
    than DARTS in these runs, as measured (means over seeds; no claim beyond them)."""
    runs = method_runs(metrics)
    if not {"darts", "sd-darts"} <= set(runs):
        return f"Comparison {NOT_RUN}: the metrics do not hold searches of both DARTS and SD-DARTS."
    parts = []
    for what, values_of, digits, lower_is in (
        (
            "final dominant Hessian eigenvalue",
            lambda s, t: [e for e in (final_eigenvalue(r.curves) for r in s) if e is not None],
            4,
            "flatter",
        ),
        ("test error (%)", lambda s, t: [float(r.summary["test_error"]) for r in t], 2, "better"),
    ):
        sd, base = (values_of(*runs[m]) for m in ("sd-darts", "darts"))
        if not sd or not base:
            parts.append(f"{what}: {NOT_RUN} for both methods")
            continue
        (m_sd, s_sd, _), (m_b, s_b, _) = mean_std(sd), mean_std(base)
        spread = max(s for s in (s_sd, s_b, 0.0) if s is not None)
        if abs(m_sd - m_b) <= spread:
            word = "within one standard deviation over seeds: no clear difference"
        elif m_sd < m_b:
            word = f"SD-DARTS is {lower_is}"
        else:
            word = f"SD-DARTS is not {lower_is}"
        parts.append(
            f"{what}: SD-DARTS {fmt(m_sd, digits)} vs DARTS {fmt(m_b, digits)} over {len(sd)} and {len(base)} runs, "
            f"{word}"
        )
    return "Measured in these runs: " + "; ".join(parts) + "."
