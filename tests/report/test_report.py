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
from support import FIXTURES, ROOT

from sd_darts import report
from sd_darts.errors import UserError
from sd_darts.experiment.report_spec import report_spec
from sd_darts.experiment.schema import read_params
from sd_darts.paper import TABLE1, load_table, paper_row

FIXTURE = FIXTURES / "report"
METRICS = FIXTURE / "metrics"
PARAMS = FIXTURE / "params.yaml"
SPEC = report_spec(read_params(PARAMS))


def build(metrics, out, params=PARAMS):
    return report.build_report(metrics, out, report_spec(read_params(params)))


EXPECTED_FILES = {
    "README.md",
    "comparison.csv",
    "comparison.md",
    "methods.csv",
    "methods.md",
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
    assert f"{statistics.mean(errors):.2f} ± {statistics.stdev(errors):.2f}" in comp


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
    assert "91.20 ± 0.20" in c10 and "searched on digits 16×16 (smoke)" in c10
    # one row per search seed, named by its run (and its benchmark index when the query gives one)
    seeds = [r for r in t4 if "one search seed" in r]
    assert len(seeds) == 2 and "SD-DARTS (nb201_search s0)" in seeds[0] and "| 91.00 " in seeds[0]
    assert "SD-DARTS (nb201_search s1)" in seeds[1] and "| 94.00 " in seeds[1]


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
# tests/report/test_report_cli.py.


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


# ---------------------------------------------------------------- what each number was measured on


def _comparison_rows(out: Path) -> tuple[list[str], list[dict[str, str]]]:
    lines = (out / "comparison.md").read_text().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    return header, rows


def paper_cifar10_fixture(tmp_path: Path) -> tuple[Path, Path]:
    """The fixture's metrics and params as if the paper profile had made them on CIFAR-10: every
    recorded profile set to ``paper``, every recorded dataset to ``cifar10`` at its own size."""
    import yaml

    m = tmp_path / "paper-metrics"
    shutil.copytree(METRICS, m)
    for path in m.rglob("*.json"):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            data.update({k: v for k, v in (("profile", "paper"), ("dataset", "cifar10")) if k in data})
            path.write_text(json.dumps(data))
    for path in m.rglob("config.yaml"):
        text = path.read_text().replace("dataset: digits", "dataset: cifar10")
        path.write_text(text.replace("image_size: 16", "image_size: null"))
    params = yaml.safe_load(PARAMS.read_text())
    params["profile"], params["data"]["dataset"] = "paper", "cifar10"
    for section in params.values():
        if isinstance(section, dict) and section.get("image_size") == 16:
            section["image_size"] = None
    path = tmp_path / "params-paper.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return m, path


def test_smoke_report_names_digits_and_smoke_and_prints_no_difference(built):
    out, _ = built
    header, rows = _comparison_rows(out)
    assert not any("Difference" in h for h in header)
    reproduced = [r for r in rows if r["Reproduced"] != "not run"]
    assert len(reproduced) >= 6
    for r in reproduced:
        assert "digits 16×16 (smoke)" in r["Measured on"], r
        assert not r["Quantity"].startswith("CIFAR-10"), r
    table2 = (out / "table2_cifar10.md").read_text().splitlines()
    ours = [line for line in table2 if "reproduced" in line]
    assert ours and all("| digits 16×16 (smoke) " in line for line in ours)
    assert all("| CIFAR-10 " in line for line in table2[2:] if line.rstrip(" |").endswith("| paper"))


def test_paper_profile_on_cifar10_prints_the_difference_to_the_paper(tmp_path):
    metrics, params = paper_cifar10_fixture(tmp_path)
    out = tmp_path / "out"
    build(metrics, out, params)
    header, rows = _comparison_rows(out)
    assert "Difference (reproduced - paper)" in header
    errors = [json.loads((metrics / "train_cifar" / f"selected-s{s}" / "metrics.json").read_text()) for s in (0, 1)]
    mean = statistics.mean(e["test_error"] for e in errors)
    row = next(r for r in rows if r["Quantity"] == "Table 2: test error (%), searched genotype")
    assert row["Measured on"] == "CIFAR-10 (paper)" and row["Difference (reproduced - paper)"] == f"+{mean - 2.58:.2f}"
    assert "not comparable" not in (out / "comparison.md").read_text()


def test_a_paper_profile_on_digits_prints_no_difference(tmp_path):
    metrics, params = paper_cifar10_fixture(tmp_path)
    for path in metrics.rglob("config.yaml"):  # the runs say they read digits: not the paper's dataset
        path.write_text(path.read_text().replace("dataset: cifar10", "dataset: digits"))
    build(metrics, tmp_path / "out", params)
    header, rows = _comparison_rows(tmp_path / "out")
    assert not any("Difference" in h for h in header)
    assert any("digits 32×32 (paper)" in r["Measured on"] for r in rows)


def _png_text(path: Path) -> dict[str, str]:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return dict(img.text)


def test_every_figure_carries_its_profile_and_dataset(built, tmp_path):
    out, _ = built
    for png in sorted(out.glob("*.png")):
        text = _png_text(png)
        assert text["Profile"] == "smoke" and text["Dataset"] == "digits 16×16", png.name
        assert text["Title"].startswith(("Fig.", "Search curves")), png.name
    (tmp_path / "metrics").mkdir()  # the paper profile before anything ran
    build(tmp_path / "metrics", tmp_path / "paper", ROOT / "params.yaml")
    for png in sorted((tmp_path / "paper").glob("*.png")):
        assert _png_text(png) | {"Title": ""} == {"Profile": "paper", "Dataset": "CIFAR-10", "Title": ""}, png.name


def test_fig4_draws_the_papers_cells_in_the_paper_profile(tmp_path):
    from sd_darts.genotypes import SD_DARTS
    from sd_darts.report.cells import PAPER_TITLE, fig4_figure

    (tmp_path / "metrics").mkdir()
    build(tmp_path / "metrics", tmp_path / "out", ROOT / "params.yaml")
    readme = (tmp_path / "out" / "README.md").read_text()
    status = readme.split("### Fig. 4")[1].split("Status: ")[1].splitlines()[0]
    assert status.startswith("the paper's SD_DARTS cells; searched cells: not run")
    fig = fig4_figure(None, "searched", "not run")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    titles = [ax.get_title() for ax in fig.axes]
    assert f"{PAPER_TITLE}: (a) normal cell" in titles and f"{PAPER_TITLE}: (b) reduction cell" in titles
    ops = sorted(op for op, _ in SD_DARTS.normal + SD_DARTS.reduce)
    assert sorted(t for t in texts if "_" in t and not t.startswith("$")) == ops


def _overlapping_labels(fig) -> list[tuple[str, str]]:
    renderer = fig.canvas.get_renderer()
    pairs = []
    for ax in fig.axes:
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]
        for i, (a, box_a) in enumerate(boxes):
            for b, box_b in boxes[i + 1 :]:
                if box_a.overlaps(box_b):
                    pairs.append((a, b))
    return pairs


@settings(max_examples=12, deadline=None)
@given(st.randoms(use_true_random=False))
def test_cell_labels_never_overlap(rng):
    from sd_darts.genotypes import DARTS_V1, DARTS_V2, PRIMITIVES, SD_DARTS, genotype_to_dict
    from sd_darts.report.cells import fig4_figure

    ops = [p for p in PRIMITIVES if p != "none"]

    def cell():
        return [[rng.choice(ops), src] for node in range(4) for src in sorted(rng.sample(range(node + 2), 2))]

    random_genotype = {"normal": cell(), "normal_concat": [2, 3, 4, 5], "reduce": cell(), "reduce_concat": [2, 3, 4, 5]}
    for genotype in (random_genotype, genotype_to_dict(DARTS_V1), genotype_to_dict(DARTS_V2)):
        fig = fig4_figure(genotype, "searched", "")  # the paper's SD_DARTS is the top row of every one
        assert _overlapping_labels(fig) == []
    del SD_DARTS


def test_ablation_legend_says_one_seed_when_there_is_one():
    from sd_darts.report.figures import spread_label

    assert spread_label({0: [97.0], 5: [97.2]}) == "this pipeline (one seed)"
    assert spread_label({0: [97.0, 96.0], 5: [97.2, 97.1]}) == "this pipeline (mean ± std over 2 seeds)"
