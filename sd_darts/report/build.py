"""The report: every table and figure, and the README that shows them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import files
from ..config import read_yaml_mapping
from ..errors import UserError
from ..paper import FIGURES
from .cells import fig4_cells
from .compare import comparison, provenance
from .figures import _ablation_figure, fig2_hessian, search_curves
from .fmt import NOT_RUN, fmt, md_table
from .read import AblationPoint, Metrics, expected_runs, load_metrics
from .tables import FIG4_READING_NOTE, _imagenet_status_text, _nb201_reason, table1, table2, table3, table4

_OUTPUT_SUFFIXES = (".md", ".csv", ".png")


def _write_table(out: Path, stem: str, df: pd.DataFrame) -> str:
    md = md_table(df)
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
        lines.append(md_table(df))
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
