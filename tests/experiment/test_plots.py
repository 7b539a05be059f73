"""`dvc plots show`: one plot per quantity with every run overlaid, named axes and
titles, read from tables that exist in the committed smoke profile; the page template inlines
only the vendored Vega bundles (no network), whose licences are kept.  The rendering in a real
browser is scripts/plots_check.sh."""

from __future__ import annotations

import configparser
import csv
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from support import ROOT

from sd_darts.experiment import schema
from sd_darts.experiment.execute import OVERLAY_COLUMNS, overlay_curves
from sd_darts.experiment.layout import Layout
from sd_darts.experiment.stages.curves import overlay_tables

PLOTS_DIR = ROOT / "scripts" / "plots"
VENDOR = PLOTS_DIR / "vendor"
BUNDLES = {"vega": "vega.min.js", "vega-lite": "vega-lite.min.js", "vega-embed": "vega-embed.min.js"}

#: plot id -> (table kind, field): the quantities shown (Fig. 2 first).
QUANTITIES = {
    "fig2_hessian_eigenvalue": ("search", "hessian/eigenvalue"),
    "search_valid_accuracy": ("search", "valid/acc"),
    "search_skip_connections": ("search", "num_skip_connect"),
    "search_kd_loss": ("search", "kd_loss"),
    "train_test_error": ("train_cifar", "test/top1_error"),
    "train_train_error": ("train_cifar", "train/top1_error"),
    "nb201_valid_accuracy": ("nb201_search", "valid/acc"),
    "nb201_kd_loss": ("nb201_search", "kd_loss"),
}


def _plots() -> dict[str, dict]:
    entries = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    ids = [next(iter(e)) for e in entries]
    assert len(ids) == len(set(ids)), ids
    return {next(iter(e)): next(iter(e.values())) for e in entries}


def _table(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_one_plot_per_quantity_with_labels_and_title():
    plots = _plots()
    assert set(plots) == set(QUANTITIES)
    for plot_id, (kind, field) in QUANTITIES.items():
        d = plots[plot_id]
        assert d["template"] == "overlay" and d["x"] == "epoch", plot_id
        assert d["y"] == {f"metrics/${{profile}}/plots/{kind}.tsv": field}, plot_id
        for key in ("x_label", "y_label", "title"):
            assert isinstance(d.get(key), str) and d[key].strip(), f"{plot_id} lacks {key}"
    assert "Fig. 2" in plots["fig2_hessian_eigenvalue"]["title"]
    assert len({d["y_label"] for d in plots.values()}) > 1  # not one "y" for everything


def test_every_plotted_field_is_in_the_committed_smoke_tables_with_every_run():
    p = schema.read_params(ROOT / "params-smoke.yaml")
    expected_runs = {
        "search": {f"{m}-s{s}" for m in p.pipeline.search_methods for s in p.seeds.search},
        "nb201_search": {f"s{s}" for s in p.seeds.nb201},
        "train_cifar": {f"{g}-s{s}" for g in p.pipeline.eval_genotypes for s in p.seeds.train_cifar},
    }
    for plot_id, d in _plots().items():
        (file, field), *_ = d["y"].items()
        path = ROOT / file.replace("${profile}", "smoke")
        assert path.is_file(), f"{plot_id}: {path} is not committed"
        rows = _table(path)
        assert rows and {*OVERLAY_COLUMNS, "epoch", field} <= set(rows[0]), (plot_id, sorted(rows[0]))
        kind = path.stem
        assert {r["run"] for r in rows} == expected_runs[kind], plot_id
        assert all(r[field] != "" for r in rows), f"{plot_id}: empty {field} values"
        for run in expected_runs[kind]:  # epochs 1-based, as in the report
            assert [int(r["epoch"]) for r in rows if r["run"] == run] == list(
                range(1, 1 + sum(r["run"] == run for r in rows))
            )
    fig2 = _table(ROOT / "metrics/smoke/plots/search.tsv")
    assert {r["series"] for r in fig2} == {"darts", "sd-darts"}  # DARTS vs SD-DARTS


def test_committed_smoke_tables_are_what_the_curves_stage_writes(monkeypatch):
    monkeypatch.chdir(ROOT)
    p = schema.read_params(ROOT / "params-smoke.yaml")
    tables = overlay_tables(p)
    assert set(tables) == {"search", "nb201_search", "train_cifar"}
    for kind, text in tables.items():
        assert (ROOT / Layout("smoke").plots / f"{kind}.tsv").read_text() == text, kind


def test_a_kind_that_did_not_run_has_no_table_and_a_missing_run_is_an_error(monkeypatch, tmp_path):
    from sd_darts.errors import UserError

    shutil.copytree(ROOT / "metrics" / "smoke" / "curves", tmp_path / "metrics" / "smoke" / "curves")
    monkeypatch.chdir(tmp_path)
    p = schema.read_params(ROOT / "params-smoke.yaml")
    shutil.rmtree(tmp_path / "metrics/smoke/curves/nb201_search")  # e.g. scripts/fmnist.sh runs no NB201 stage
    assert set(overlay_tables(p)) == {"search", "train_cifar"}
    (tmp_path / "metrics/smoke/curves/search/darts-s1.tsv").unlink()
    with pytest.raises(UserError, match="darts-s1.tsv does not exist"):
        overlay_tables(p)


def test_overlay_curves_stacks_runs_and_keeps_values_verbatim():
    a = "epoch\tx\n1\t0.10\n2\t0.2\n"
    b = "epoch\tx\ty\n1\t3\t4\n"
    assert overlay_curves([("darts", 0, "darts-s0", a), ("sd-darts", 1, "sd-darts-s1", b)]) == (
        "series\tseed\trun\tepoch\tx\ty\n"
        "darts\t0\tdarts-s0\t1\t0.10\t\n"
        "darts\t0\tdarts-s0\t2\t0.2\t\n"
        "sd-darts\t1\tsd-darts-s1\t1\t3\t4\n"
    )
    with pytest.raises(ValueError):  # a row with a missing cell is not silently shifted
        overlay_curves([("darts", 0, "darts-s0", "epoch\tx\n1\n")])


def test_overlay_template_colours_by_series_and_dashes_by_seed():
    t = json.loads((ROOT / ".dvc" / "plots" / "overlay.json").read_text())
    enc = t["encoding"]
    assert enc["color"]["field"] == "series" and enc["strokeDash"]["field"] == "seed"
    assert enc["x"]["field"] == "<DVC_METRIC_X>" and enc["y"]["field"] == "<DVC_METRIC_Y>"
    assert t["data"] == {"values": "<DVC_METRIC_DATA>"}  # inline data, nothing fetched
    assert t["usermeta"]["embedOptions"]["renderer"] == "svg"  # scripts/plots_check.sh counts SVG marks


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[dict] = []
        self.texts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "link", "img", "iframe"):
            self.tags.append({"tag": tag, **dict(attrs)})
        self._in_script = tag == "script"
        if self._in_script:
            self.texts.append("")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.texts[-1] += data


def _page_template() -> Path:
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    return (ROOT / ".dvc" / config["plots"]["html_template"]).resolve()


def test_page_template_inlines_only_the_vendored_bundles():
    page = _page_template()
    assert page == PLOTS_DIR / "page.html"
    text = page.read_text()
    assert "{plot_divs}" in text and "{scripts}" not in text  # {scripts}: DVC's CDN <script src> tags
    parser = _Scripts()
    parser.feed(text)
    assert [t["tag"] for t in parser.tags] == ["script"] * len(BUNDLES)
    assert not any("src" in t or "href" in t for t in parser.tags), parser.tags
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", text)
    vendored = [
        "\n".join(x for x in (VENDOR / f).read_text().splitlines() if not x.startswith("//# sourceMappingURL="))
        for f in BUNDLES.values()
    ]
    assert [s.split("\n", 1)[1].rsplit("\n", 1)[0] for s in parser.texts] == vendored


def test_page_template_is_what_build_page_writes():
    spec = importlib.util.spec_from_file_location("build_page", PLOTS_DIR / "build_page.py")
    build_page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_page)
    assert build_page.main(["--check"]) == 0, "run 'python scripts/plots/build_page.py'"


def test_vendored_bundles_are_pinned_with_their_licences():
    readme = (VENDOR / "README.md").read_text()
    for package, bundle in BUNDLES.items():
        path = VENDOR / bundle
        assert path.is_file(), path
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        row = next((r for r in readme.splitlines() if r.startswith(f"| `{bundle}` ")), None)
        assert row and digest in row, f"{bundle}: README.md lacks its row or sha256 {digest}"
        assert re.search(rf"\| `{re.escape(package)}` .*\| \d+\.\d+\.\d+ \|", row), f"{bundle}: no pinned version"
        licence = (VENDOR / f"LICENSE.{package}").read_text()
        assert "Redistribution and use in source and binary forms" in licence, package


@pytest.mark.skipif(shutil.which("git") is None, reason="dvc plots show needs git for a repository")
def test_dvc_plots_show_resolves_every_plot_for_the_smoke_profile(tmp_path):
    """``dvc plots show --json`` in a copy of the committed smoke profile: every plot id, no errors."""
    site = tmp_path / "repo"
    (site / "metrics" / "smoke").mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", site / "dvc.yaml")
    shutil.copy(ROOT / "params-smoke.yaml", site / "params.yaml")
    shutil.copytree(ROOT / ".dvc", site / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copytree(ROOT / "metrics" / "smoke" / "plots", site / "metrics" / "smoke" / "plots")
    subprocess.run(["git", "init", "-q"], cwd=site, check=True)
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=site, capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout)
    assert not data.get("errors"), data["errors"]
    assert set(data["data"]) == set(QUANTITIES)
    fig2 = data["data"]["fig2_hessian_eigenvalue"][0]["content"]
    assert fig2["title"]["text"].startswith("Fig. 2")
    assert len(fig2["data"]["values"]) == len(_table(ROOT / "metrics/smoke/plots/search.tsv"))
