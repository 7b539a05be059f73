"""The report's DARTS vs SD-DARTS table: measured rows computed from the runs, the DARTS
baseline's trainings and cells, the verdict in words whichever way the numbers go, and the
dataset's published results quoted (never for a dataset they are not about)."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pandas as pd
import pytest
from support import FIXTURES, ROOT

from sd_darts import report
from sd_darts.experiment.report_spec import report_spec
from sd_darts.experiment.schema import read_params
from sd_darts.report.baselines import QUOTED

FIXTURE = FIXTURES / "report"


def _rows(path: Path) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in path.read_text().splitlines()[2:]]


def _last_eigenvalues(metrics: Path, method: str) -> list[float]:
    values = []
    for seed in (0, 1):
        curves = pd.read_csv(metrics / "search" / f"{method}-s{seed}" / "curves.tsv", sep="\t")
        values.append(float(curves["hessian/eigenvalue"].dropna().iloc[-1]))
    return values


@pytest.fixture
def with_baseline(tmp_path):
    """The report fixture plus the DARTS baseline: its genotype, its selection, two trainings."""
    metrics = tmp_path / "metrics"
    shutil.copytree(FIXTURE / "metrics", metrics)
    for i, run in enumerate(sorted((metrics / "search").iterdir())):  # the selection criterion, as runs record it now
        summary = json.loads((run / "summary.json").read_text())
        summary["supernet_valid_acc"] = 20.0 + 3.5 * i
        (run / "summary.json").write_text(json.dumps(summary))
    genotype = metrics / "genotype"
    shutil.copy(metrics / "search" / "darts-s1" / "genotype.json", genotype / "darts.json")
    selection = json.loads((genotype / "selection.json").read_text())
    selection["darts_baseline"] = "darts-s1"
    (genotype / "selection.json").write_text(json.dumps(selection))
    errors = {0: 61.5, 1: 64.25}
    for seed, error in errors.items():
        run = metrics / "train_cifar" / f"darts-s{seed}"
        shutil.copytree(metrics / "train_cifar" / f"selected-s{seed}", run)
        m = json.loads((run / "metrics.json").read_text())
        m["test_error"] = error
        (run / "metrics.json").write_text(json.dumps(m))
    params = tmp_path / "params.yaml"
    text = (FIXTURE / "params.yaml").read_text()
    params.write_text(text.replace("eval_genotypes: [selected, paper]", "eval_genotypes: [selected, paper, darts]"))
    out = tmp_path / "report"
    report.build_report(metrics, out, report_spec(read_params(params)))
    return metrics, out, errors


def test_both_methods_rows_are_computed_from_their_runs(with_baseline):
    metrics, out, errors = with_baseline
    rows = {r[0]: r for r in _rows(out / "methods.md")}
    darts, sd = rows["DARTS"], rows["SD-DARTS"]
    expect = f"{statistics.mean(errors.values()):.2f} ± {statistics.stdev(errors.values()):.2f}"
    assert darts[6] == expect and "train_cifar darts-s0,darts-s1" in darts[-1]
    selected = [json.loads((metrics / "train_cifar" / f"selected-s{s}" / "metrics.json").read_text()) for s in (0, 1)]
    assert (
        sd[6]
        == f"{statistics.mean(r['test_error'] for r in selected):.2f} ± {statistics.stdev(r['test_error'] for r in selected):.2f}"
    )
    for method, row in (("darts", darts), ("sd-darts", sd)):
        eig = _last_eigenvalues(metrics, method)
        assert row[5] == f"{statistics.mean(eig):.4f} ± {statistics.stdev(eig):.4f}"
        acc = [json.loads((metrics / "search" / f"{method}-s{s}" / "summary.json").read_text()) for s in (0, 1)]
        assert (
            row[3]
            == f"{statistics.mean(a['supernet_valid_acc'] for a in acc):.2f} ± {statistics.stdev(a['supernet_valid_acc'] for a in acc):.2f}"
        )
        assert row[-1].startswith("measured: search ")
    # digits is not Fashion-MNIST: nothing is quoted
    assert set(rows) == {"DARTS", "SD-DARTS"}


def test_the_darts_baseline_is_trained_drawn_and_named_in_table2(with_baseline):
    _, out, _ = with_baseline
    assert (out / "cells_darts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table2 = (out / "table2_cifar10.md").read_text()
    assert "DARTS (baseline searched by this pipeline)" in table2
    readme = (out / "README.md").read_text()
    assert "DARTS baseline (the darts search with the best supernet_valid_acc): `darts-s1`" in readme
    assert "![Normal and reduction cells of the DARTS baseline" in readme


def test_the_verdict_says_what_the_numbers_show(with_baseline):
    metrics, out, errors = with_baseline
    readme = (out / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("Measured in these runs:"))
    sd_eig, darts_eig = (statistics.mean(_last_eigenvalues(metrics, m)) for m in ("sd-darts", "darts"))
    spread = max(statistics.stdev(_last_eigenvalues(metrics, m)) for m in ("sd-darts", "darts"))
    assert f"SD-DARTS {sd_eig:.4f} vs DARTS {darts_eig:.4f}" in line
    if abs(sd_eig - darts_eig) <= spread:
        assert "no clear difference" in line.split(";")[0]
    else:
        assert ("SD-DARTS is flatter" if sd_eig < darts_eig else "SD-DARTS is not flatter") in line


def test_a_clear_difference_is_called_by_its_direction(with_baseline, tmp_path):
    metrics, _, _ = with_baseline
    for seed in (0, 1):  # SD-DARTS's trainings far worse than DARTS's, with a tiny spread
        path = metrics / "train_cifar" / f"selected-s{seed}" / "metrics.json"
        m = json.loads(path.read_text())
        m["test_error"] = 90.0 + seed * 0.02
        path.write_text(json.dumps(m))
    params = tmp_path / "params.yaml"
    out = tmp_path / "again"
    report.build_report(metrics, out, report_spec(read_params(params)))
    line = next(ln for ln in (out / "README.md").read_text().splitlines() if ln.startswith("Measured in these runs:"))
    assert "test error (%): SD-DARTS 90.01 vs DARTS 62.88 over 2 and 2 runs, SD-DARTS is not better" in line


def test_the_fmnist_report_quotes_the_datasets_published_results_as_quoted(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    out = tmp_path / "report"
    report.build_report(metrics, out, report_spec(read_params(ROOT / "params-fmnist.yaml")))
    rows = _rows(out / "methods.md")
    assert len(rows) == len(QUOTED["fashion-mnist"])
    for row, (name, _, accuracy) in zip(rows, QUOTED["fashion-mnist"]):
        assert row[0].startswith(name) and row[7] == f"{accuracy:.3f}" and row[-1].startswith("quoted: ")
        assert row[1] == "Fashion-MNIST" and row[6] == f"{100 * (1 - accuracy):.1f}"
    readme = (out / "README.md").read_text()
    assert "Comparison not run" in readme and "real data (Fashion-MNIST)" in readme
