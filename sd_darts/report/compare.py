"""Every reproduced number beside the paper's, and the provenance of every run."""

from __future__ import annotations

import pandas as pd

from ..paper import TABLE4_COLUMNS, paper_row
from .fmt import NOT_RUN, fmt, fmt_pm, fmt_signed, mean_std, paper_float, produced_by
from .labels import comparable, measured_on, not_comparable
from .metrics_files import ENVIRONMENT_KEYS
from .read import Metrics
from .tables import ON, device_kind, imagenet_status_text, nb201_reason, sd_searches, search_cost_days, train_groups

#: The column of differences to the paper, present only when the report is comparable to it.
DIFFERENCE = "Difference (reproduced - paper)"


def comparison(metrics: Metrics) -> pd.DataFrame:
    """Every headline number of the paper beside the reproduced one, what that was measured on,
    and (only for the paper profile on CIFAR-10, :func:`~.labels.comparable`) the difference."""
    rows = []
    with_difference = comparable(metrics)
    cifar_on = measured_on(metrics, metrics.train_cifar)
    searched_on = "genotype searched on " + measured_on(metrics, metrics.searches)

    def add(
        quantity: str,
        paper_text: str,
        values: list[float] | None,
        produced: str,
        on: str,
        digits: int = 2,
        summary: tuple[float, float] | None = None,
    ):
        """``values``: per-run numbers (mean ± sample std), or ``summary``: a given (mean, std);
        ``on``: what the reproduced number was measured on."""
        paper_value = paper_float(paper_text.split("±")[0]) if paper_text else None
        if summary is not None:
            m = summary[0]
            rep = f"{fmt(summary[0], digits)} ± {fmt(summary[1], digits)}"
        elif values:
            m, _s, _n = mean_std(values)
            rep = fmt_pm(values, digits)
        else:
            m, rep = None, NOT_RUN
        row = {"Quantity": quantity, "Paper": paper_text or "-", "Reproduced": rep, ON: on if m is not None else "-"}
        if with_difference:
            row[DIFFERENCE] = fmt_signed(m - paper_value, digits) if m is not None and paper_value is not None else "-"
        row["Produced by"] = produced + (not_comparable(metrics) if m is not None else "")
        rows.append(row)

    t2 = paper_row("table2")
    t2best = paper_row("table2", "sd-darts-best")
    groups = train_groups(metrics.train_cifar)
    sel = groups.get("selected", [])
    add(
        "Table 2: test error (%), searched genotype",
        f"{t2['test_error']} ± {t2['test_error_std']} (CIFAR-10)",
        [float(r.summary["test_error"]) for r in sel],
        produced_by("train_cifar", sel),
        measured_on(metrics, sel),
    )
    add(
        "Table 2: best test error (%), searched genotype",
        f"{t2best['test_error']} (CIFAR-10)",
        [min(float(r.summary["test_error"]) for r in sel)] if sel else None,
        produced_by("train_cifar", sel),
        measured_on(metrics, sel),
    )
    pap = groups.get("paper", [])
    add(
        "Table 2: test error (%), paper's Fig. 4 genotype",
        f"{t2['test_error']} ± {t2['test_error_std']} (CIFAR-10)",
        [float(r.summary["test_error"]) for r in pap],
        produced_by("train_cifar", pap),
        measured_on(metrics, pap),
    )
    add(
        "Table 2: params (M), searched genotype as trained",
        f"{t2['params_m']} (CIFAR-10 network)",
        [float(sel[0].summary["params_m"])] if sel else None,
        produced_by("train_cifar", sel[:1]),
        f"network trained on {cifar_on}",
    )
    cst = ((metrics.genotype_stats or {}).get("selected") or {}).get("cifar") or {}
    add(
        f"Table 2: params (M), searched genotype at C={cst.get('init_channels', 36)}, {cst.get('layers', 20)} cells",
        f"{t2['params_m']} (CIFAR-10 network)",
        [float(cst["params_m"])] if cst else None,
        "genotype stage (sd_darts.evaluation.stats)" if cst else NOT_RUN,
        f"CIFAR-10 network counted; {searched_on}",
    )
    sd_search = sd_searches(metrics)
    cost = search_cost_days(sd_search)
    add(
        f"Table 2: search cost ({device_kind(sd_search) or 'GPU'}-days; paper: GPU-days)",
        f"{t2['search_cost_gpu_days']} (CIFAR-10)",
        [cost] if cost is not None else None,
        produced_by("search", sd_search),
        measured_on(metrics, sd_search),
        digits=4,
    )

    t3 = paper_row("table3")
    im = train_groups(metrics.train_imagenet).get("selected", [])
    im_produced = produced_by("train_imagenet", im) if im else "train_imagenet " + imagenet_status_text(metrics)
    im_on = measured_on(metrics, im)
    add(
        "Table 3: ImageNet top-1 error (%)",
        t3["top1_error"],
        [float(r.summary["test_error"]) for r in im],
        im_produced,
        im_on,
    )
    add(
        "Table 3: ImageNet top-5 error (%)",
        t3["top5_error"],
        [float(r.summary["top5_error"]) for r in im],
        im_produced,
        im_on,
    )
    st = ((metrics.genotype_stats or {}).get("selected") or {}).get("imagenet") or {}
    add(
        "Table 3: ImageNet params (M), searched genotype",
        t3["params_m"],
        [float(st["params_m"])] if st else None,
        "genotype stage (sd_darts.evaluation.stats)" if st else NOT_RUN,
        f"ImageNet network counted; {searched_on}",
    )
    add(
        "Table 3: ImageNet ×+ (M), searched genotype",
        t3["mult_adds_m"],
        [float(st["mult_adds_m"])] if st else None,
        "genotype stage (sd_darts.evaluation.stats)" if st else NOT_RUN,
        f"ImageNet network counted; {searched_on}",
        digits=0,
    )

    t4 = paper_row("table4")
    q = metrics.nb201_query or {}
    nb_produced = (
        produced_by("nb201_search", metrics.nb201_searches) if q.get("status") == "ok" else nb201_reason(metrics)
    )
    for key, label in TABLE4_COLUMNS:
        cell = (q.get("row") or {}).get(key) if q.get("status") == "ok" else None
        add(
            f"Table 4: NAS-Bench-201 {label} accuracy (%)",
            f"{t4[key]} ± {t4[key + '_std']}",
            None,
            nb_produced,
            f"NAS-Bench-201; searched on {measured_on(metrics, metrics.nb201_searches)}",
            summary=(float(cell["mean"]), float(cell["std"])) if cell else None,
        )
    return pd.DataFrame(rows)


def _environment(prov: dict) -> str:
    parts = [f"{key} {prov[key]}" for key in ENVIRONMENT_KEYS if prov.get(key) not in (None, "")]
    return "; ".join(parts) if parts else "-"


def provenance(metrics: Metrics) -> pd.DataFrame:
    """Stage, run folder, seed, device, git revision, environment and command of every run shown."""
    columns = ["Stage", "Run", "Seed", "Device", "Git revision", "Environment", "Command"]
    rows = []
    for r in metrics.all_runs():
        rows.append(
            {
                "Stage": r.ref.kind,
                "Run": r.rel,
                "Seed": str(r.seed),
                "Device": r.device,
                "Git revision": r.git,
                "Environment": _environment(r.provenance),
                "Command": str(r.provenance.get("command") or "-"),
            }
        )
    return pd.DataFrame(rows, columns=columns)
