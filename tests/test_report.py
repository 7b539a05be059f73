"""The report: paper tables transcribed faithfully, reproduced rows computed from the metrics,
"not run" where nothing ran, and byte-for-byte reproducible output (tables and PNGs)."""

from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sd_darts import report
from sd_darts.errors import UserError
from sd_darts.experiment.report_spec import report_spec
from sd_darts.experiment.schema import read_params
from sd_darts.paper import TABLE1, load_table, paper_row

FIXTURE = Path(__file__).parent / "fixtures" / "report"
METRICS = FIXTURE / "metrics"
PARAMS = FIXTURE / "params.yaml"
SPEC = report_spec(read_params(PARAMS))


def build(metrics, out, params=PARAMS):
    return report.build_report(metrics, out, report_spec(read_params(params)))


EXPECTED_FILES = {
    "README.md",
    "comparison.csv",
    "comparison.md",
    "provenance.csv",
    "provenance.md",
    "table1_hyperparameters.csv",
    "table1_hyperparameters.md",
    "table2_cifar10.csv",
    "table2_cifar10.md",
    "table3_imagenet.csv",
    "table3_imagenet.md",
    "table4_nb201.csv",
    "table4_nb201.md",
    "fig2_hessian.png",
    "fig4_cells.png",
    "fig5_warmup.png",
    "fig6_window.png",
    "search_curves.png",
    "search_curves_nb201.png",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    written = report.build_report(METRICS, out, SPEC)
    return out, written


# ---------------------------------------------------------------- paper tables (package data)


def test_paper_tables_are_complete_transcriptions():
    t2, t3, t4 = load_table("table2"), load_table("table3"), load_table("table4")
    assert len(t2) == 24 and len(t3) == 28 and len(t4) == 9  # rows printed in the paper
    assert (t2["row"] == "literature").sum() == 22 and (t3["row"] == "literature").sum() == 27
    # every printed number parses (apart from the paper's own '-' and '~5')
    for df, cols in (
        (t2, ["test_error", "params_m", "search_cost_gpu_days"]),
        (t3, ["top1_error", "top5_error", "params_m", "mult_adds_m", "search_cost_gpu_days"]),
        (t4, [c for c in t4.columns if c not in ("method", "ref", "row")]),
    ):
        for col in cols:
            for cell in df[col]:
                if cell in ("-", ""):
                    continue
                float(cell.lstrip("~"))


def test_paper_sd_darts_rows_match_the_paper_text():
    t2 = paper_row("table2")
    assert (t2["test_error"], t2["test_error_std"], t2["params_m"], t2["search_cost_gpu_days"]) == (
        "2.58",
        "0.11",
        "3.3",
        "0.37",
    )
    assert paper_row("table2", "sd-darts-best")["test_error"] == "2.44"
    t3 = paper_row("table3")
    assert (t3["top1_error"], t3["top5_error"], t3["params_m"], t3["mult_adds_m"]) == ("25.0", "7.62", "4.7", "534")
    t4 = paper_row("table4")
    assert [
        t4[k]
        for k in (
            "cifar10_valid",
            "cifar10_test",
            "cifar100_valid",
            "cifar100_test",
            "imagenet16_valid",
            "imagenet16_test",
        )
    ] == ["91.21", "93.91", "70.87", "71.88", "45.75", "46.03"]
    assert [t4[k + "_std"] for k in ("cifar10_valid", "cifar100_test", "imagenet16_test")] == ["0.11", "0.76", "0.59"]
    # a few baseline rows checked against the paper text
    darts2 = load_table("table2").set_index("architecture").loc["DARTS (2nd order)"]
    assert (darts2["test_error"], darts2["test_error_std"], darts2["search_cost_gpu_days"]) == ("2.76", "0.09", "1")
    dsnas = load_table("table4").set_index("method").loc["DSNAS"]
    assert (dsnas["cifar100_valid"], dsnas["cifar100_valid_std"]) == ("30.87", "16.40")
    assert [r[2] for r in TABLE1] == [25, 1.0, 2, 50, 64]


def test_unknown_paper_table_is_a_user_error():
    with pytest.raises(UserError, match="unknown paper table"):
        load_table("table9")


# ---------------------------------------------------------------- the report on fixture metrics


def test_report_writes_every_table_and_figure(built):
    out, written = built
    assert {p.name for p in written} == EXPECTED_FILES
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES | {report.MANIFEST}
    for p in written:
        assert p.stat().st_size > 0
    readme = (out / "README.md").read_text()
    assert "Profile: **smoke**" in readme and "NOT comparable" in readme
    for text in (out / n for n in EXPECTED_FILES if n.endswith((".md", ".csv"))):
        body = text.read_text()
        assert not re.search(r"\bnan\b|\binf\b", body, re.IGNORECASE), text.name
    assert (out / "fig2_hessian.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reproduced_cifar_row_is_computed_from_the_metrics(built):
    out, _ = built
    errors = [
        json.loads((METRICS / "train_cifar" / f"selected-s{s}" / "metrics.json").read_text())["test_error"]
        for s in (0, 1)
    ]
    expect = f"{statistics.mean(errors):.2f} ± {statistics.stdev(errors):.2f}"
    rows = (out / "table2_cifar10.md").read_text().splitlines()
    row = next(r for r in rows if "SD-DARTS (searched by this pipeline)" in r and "best" not in r)
    assert expect in row
    assert "reproduced: train_cifar selected-s0,selected-s1 (seeds 0,1; device cpu; git" in row
    best = next(r for r in rows if "SD-DARTS (searched by this pipeline, best)" in r)
    assert f"{min(errors):.2f}" in best
    # every literature row says it is the paper's number
    paper_rows = [r for r in rows[2:] if "reproduced" not in r]
    assert len(paper_rows) == 24 and all(r.rstrip(" |").endswith("paper") for r in paper_rows)
    comp = (out / "comparison.md").read_text()
    diff = statistics.mean(errors) - 2.58
    assert f"+{diff:.2f}" in comp


def test_not_run_stages_say_so_and_give_no_number(built):
    out, _ = built
    t3 = (out / "table3_imagenet.md").read_text()
    assert "not run (pipeline.train_imagenet is false" in t3
    t4 = (out / "table4_nb201.md").read_text().splitlines()
    ours = next(r for r in t4 if "SD-DARTS (this pipeline)" in r)
    assert ours.count("not run") >= 6 and "benchmark file not provided" in ours
    comp = (out / "comparison.md").read_text().splitlines()
    for line in comp:
        if "NAS-Bench-201" in line or "ImageNet top-" in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[2] == "not run" and cells[3] == "-", line


def test_table1_compares_params_with_the_paper(built):
    out, _ = built
    lines = (out / "table1_hyperparameters.md").read_text().splitlines()
    xi = next(line for line in lines if line.startswith("| ξ"))
    assert "| 25 " in xi and "| warmup_epochs " in xi and "| 1 " in xi and "| no " in xi  # smoke profile: ξ = 1
    lam = next(line for line in lines if line.startswith("| λ"))
    assert "| yes " in lam


def test_report_is_byte_for_byte_reproducible(built, tmp_path):
    out, _ = built
    again = report.build_report(METRICS, tmp_path / "again", SPEC)
    for p in again:
        assert p.read_bytes() == (out / p.name).read_bytes(), p.name
    png = (out / "fig4_cells.png").read_bytes()
    assert b"Software" not in png and b"matplotlib" not in png.lower()


def test_empty_metrics_give_a_complete_report_of_not_run(tmp_path):
    (tmp_path / "metrics").mkdir()
    written = build(tmp_path / "metrics", tmp_path / "out")
    names = {p.name for p in written}
    assert EXPECTED_FILES - {"search_curves_nb201.png"} == names
    t2 = (tmp_path / "out" / "table2_cifar10.md").read_text()
    assert "SD-DARTS (this pipeline)" in t2 and "not run" in t2
    comp = (tmp_path / "out" / "comparison.md").read_text()
    assert "not run" in comp and not re.search(r"\bnan\b", comp, re.IGNORECASE)


def test_nb201_query_results_fill_table4(tmp_path):
    metrics = tmp_path / "metrics"
    for folder in ("nb201_search", "nb201_query"):  # the rest is "not run": quicker to draw
        shutil.copytree(METRICS / folder, metrics / folder)
    cols = ["cifar10_valid", "cifar10_test", "cifar100_valid", "cifar100_test", "imagenet16_valid", "imagenet16_test"]
    # Two benchmark rows (as sd_darts.nb201.Benchmark.query gives them) and their summary.
    per_seed = [
        {"seed": 0, "arch": "a", **dict(zip(cols, [91.0, 93.8, 70.5, 71.2, 45.0, 45.5]))},
        {"seed": 1, "arch": "b", **dict(zip(cols, [91.4, 94.0, 71.1, 72.0, 46.0, 46.3]))},
    ]
    row = {
        c: {"mean": statistics.mean([r[c] for r in per_seed]), "std": statistics.pstdev([r[c] for r in per_seed])}
        for c in cols
    }
    query = {"status": "ok", "benchmark": "NAS-Bench-201-v1_1-096897.pth", "row": row, "per_seed": per_seed}
    (metrics / "nb201_query" / "query.json").write_text(json.dumps({**query, "profile": "smoke"}))
    build(metrics, tmp_path / "out")
    t4 = (tmp_path / "out" / "table4_nb201.md").read_text().splitlines()
    ours = next(r for r in t4 if "SD-DARTS (this pipeline)" in r)
    assert "91.20 ± 0.20" in ours and "93.90 ± 0.10" in ours and "not run" not in ours
    assert "reproduced: nb201_search s0,s1" in ours
    comp = (tmp_path / "out" / "comparison.md").read_text()
    c10 = next(r for r in comp.splitlines() if "NAS-Bench-201 CIFAR-10 valid" in r)
    assert "91.20 ± 0.20" in c10 and "-0.01" in c10


def test_missing_metrics_folder_and_bad_params_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="metrics folder"):
        report.build_report(tmp_path / "nope", tmp_path / "out", SPEC)
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        report_spec(read_params(bad))
    broken = tmp_path / "m"
    shutil.copytree(METRICS, broken)
    (broken / "search" / "darts-s0" / "summary.json").write_text("{not json")
    with pytest.raises(UserError, match="summary.json is not valid JSON"):
        build(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# The command line (`sd-darts report`, exit codes, what it prints) is tested end to end in
# tests/test_report_cli.py.


# ---------------------------------------------------------------- number formatting


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=8))
def test_mean_std_matches_statistics(values):
    m, s, n = report.mean_std(values)
    assert n == len(values)
    assert m == pytest.approx(statistics.fmean(values), rel=1e-9, abs=1e-9)
    if n == 1:
        assert s is None
    else:
        assert s == pytest.approx(statistics.stdev(values), rel=1e-6, abs=1e-6)


@given(st.floats(-1e6, 1e6, allow_nan=False), st.integers(0, 4))
def test_fmt_is_fixed_point_without_negative_zero(x, digits):
    text = report.fmt(x, digits)
    assert float(text) == pytest.approx(round(x, digits), abs=10**-digits)
    assert not re.fullmatch(r"-0(\.0*)?", text)  # no negative zero
    if digits:
        assert len(text.split(".")[1]) == digits
    assert report.fmt(None) == "-" and report.fmt(float("nan")) == "-"


def test_run_folders_the_params_do_not_make_are_not_reported(tmp_path):
    m = tmp_path / "metrics"
    shutil.copytree(METRICS, m)
    s7 = m / "search" / "sd-darts-s7"  # e.g. left by another list of seeds
    shutil.copytree(m / "search" / "sd-darts-s0", s7)
    summary = json.loads((s7 / "summary.json").read_text())
    (s7 / "summary.json").write_text(json.dumps({**summary, "seed": 7}))
    (s7 / "config.yaml").write_text((s7 / "config.yaml").read_text().replace("seed: 0", "seed: 7"))
    shutil.copytree(m / "ablation_warmup" / "xi2-s0", m / "ablation_warmup" / "xi40-s0")
    out = tmp_path / "out"
    params = tmp_path / "params.yaml"  # the fixture's, expecting fewer runs (quicker to draw): seed 99 never ran
    text = (
        PARAMS.read_text().replace("train_cifar: [0, 1]", "train_cifar: [99]").replace("nb201: [0, 1]", "nb201: [99]")
    )
    params.write_text(text.replace("search_methods: [darts, sd-darts]", "search_methods: [sd-darts]"))
    build(m, out, params)
    readme = (out / "README.md").read_text()
    assert "Not reported" in readme and "`search/sd-darts-s7`" in readme and "`ablation_warmup/xi40-s0`" in readme
    assert "sd-darts-s7" not in (out / "provenance.md").read_text()
