"""The report's params-free description (ReportSpec, RunRef), and the one the experiment layer
makes of a params file (sd_darts.experiment.report_spec)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from support import FIXTURES

from sd_darts.errors import UserError
from sd_darts.experiment.report_spec import report_spec
from sd_darts.experiment.schema import read_params
from sd_darts.report import KINDS, ReportSpec, RunRef, load_metrics

FIXTURE = FIXTURES / "report"
METRICS = FIXTURE / "metrics"
PARAMS = FIXTURE / "params.yaml"


def test_spec_from_the_smoke_params_names_every_run_the_pipeline_makes():
    spec = report_spec(read_params(PARAMS))
    assert spec.profile == "smoke" and spec.title == "SD-DARTS reproduction report (smoke profile)"
    assert dict(spec.table1) == {"warmup_epochs": 1, "sd_lambda": 1.0, "window": 2, "epochs": 4, "batch_size": 32}
    by_kind = {k: [(r.path, r.seed, r.label, r.value) for r in spec.runs_of(k)] for k in KINDS}
    assert by_kind["search"] == [
        ("search/darts-s0", 0, "darts", None),
        ("search/darts-s1", 1, "darts", None),
        ("search/sd-darts-s0", 0, "sd-darts", None),
        ("search/sd-darts-s1", 1, "sd-darts", None),
    ]
    assert [p for p, *_ in by_kind["train_cifar"]] == [
        "train_cifar/paper-s0",
        "train_cifar/paper-s1",
        "train_cifar/selected-s0",
        "train_cifar/selected-s1",
    ]
    assert by_kind["train_imagenet"] == [
        ("train_imagenet/paper-s0", 0, "paper", None),
        ("train_imagenet/selected-s0", 0, "selected", None),
    ]
    assert by_kind["nb201_search"] == [("nb201_search/s0", 0, "", None), ("nb201_search/s1", 1, "", None)]
    assert [(p, v) for p, _, _, v in by_kind["ablation_warmup"]] == [
        ("ablation_warmup/xi0-s0", 0),
        ("ablation_warmup/xi1-s0", 1),
        ("ablation_warmup/xi2-s0", 2),
    ]
    assert [v for *_, v in by_kind["ablation_window"]] == [1, 2, 3]
    assert dict(spec.ablation_fixed) == {"window_in_warmup_sweep": 1, "warmup_in_window_sweep": 1}
    assert (spec.genotype_dir, spec.nb201_query, spec.imagenet_status) == (
        "genotype",
        "nb201_query/query.json",
        "train_imagenet/status.json",
    )


def test_the_report_reads_exactly_the_runs_of_the_spec(tmp_path):
    full = report_spec(read_params(PARAMS))
    keep = [r for r in full.runs if r.path in ("search/sd-darts-s1", "train_cifar/selected-s0")]
    missing = RunRef("train_cifar", "train_cifar/selected-s5", 5, label="selected")  # expected, never run
    spec = ReportSpec(profile="smoke", title="t", runs=(*keep, missing))
    m = load_metrics(METRICS, spec)
    assert [r.rel for r in m.all_runs()] == ["search/sd-darts-s1", "train_cifar/selected-s0"]
    assert m.selection is None and m.nb201_query is None  # not named by the spec: not read
    assert "search/darts-s0" in m.not_reported and "ablation_window/k3-s0" in m.not_reported
    assert "train_cifar/selected-s5" not in m.not_reported and "train_cifar/selected-s0" not in m.not_reported
    # a run folder of the spec that is a file is refused
    metrics = tmp_path / "m"
    (metrics / "search").mkdir(parents=True)
    (metrics / "search" / "sd-darts-s1").write_text("x")
    with pytest.raises(UserError, match="must be a run folder"):
        load_metrics(metrics, spec)


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"kind": "train"}, "run kind"),
        ({"path": "/abs/run"}, "relative path"),
        ({"path": "search/../x"}, "relative path"),
        ({"path": ""}, "relative path"),
        ({"seed": -1}, "seed"),
        ({"seed": True}, "seed"),
        ({"value": 3}, "only ablation points"),
        ({"kind": "ablation_window", "value": None}, "value"),
        ({"kind": "ablation_window", "value": float("nan")}, "value"),
    ],
)
def test_run_refs_are_checked(kwargs, problem):
    args = {"kind": "search", "path": "search/a-s0", "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=problem):
        RunRef(**args)


def test_report_specs_are_checked():
    a = RunRef("search", "search/a-s0", 0)
    with pytest.raises(ValueError, match="distinct"):
        ReportSpec("smoke", "t", runs=(a, a))
    with pytest.raises(ValueError, match="inside another"):
        ReportSpec("smoke", "t", runs=(a, RunRef("search", "search/a-s0/x", 0)))
    with pytest.raises(ValueError, match="unknown keys"):
        ReportSpec("smoke", "t", ablation_fixed={"window": 1})
    with pytest.raises(ValueError, match="profile"):
        ReportSpec("", "t")
    spec = ReportSpec("smoke", "t", runs=(RunRef("train_cifar", "t/b", 1), a), table1={"epochs": 4})
    assert [r.path for r in spec.runs] == ["search/a-s0", "t/b"]  # sorted by kind, then path
    with pytest.raises(TypeError):
        spec.table1["epochs"] = 5  # frozen, inside too


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ab./\\-_\0", max_size=12))
def test_run_paths_stay_inside_the_metrics_root(path):
    try:
        ref = RunRef("search", path, 0)
    except ValueError:
        return
    parts = ref.path.split("/")
    assert not ref.path.startswith("/") and ".." not in parts and "." not in parts and "" not in parts
    assert "\\" not in ref.path and "\0" not in ref.path


DROP = object()  # remove the key


@pytest.mark.parametrize(
    "section, key, value, problem",
    [
        ("seeds", "search", "x", "seeds.search: must be a list"),
        ("seeds", "train_cifar", DROP, "seeds.train_cifar is missing"),
        ("search", "epochs", "fifty", "search.epochs: must be an integer"),
        ("report", "title", ["a"], "report.title"),
        ("report", "title", "two\nlines", "report.title: must be one line"),
        (None, "profile", 3, "profile must be a short lowercase name"),
        (None, None, [1, 2], "must hold a mapping"),
    ],
)
def test_bad_params_files_are_one_line_errors(tmp_path, section, key, value, problem):
    """The fixture's params with one bad value: read_params or report_spec refuses it in one line."""
    data = yaml.safe_load(PARAMS.read_text())
    where = data if section is None else data[section]
    if key is None:
        data = value
    elif value is DROP:
        del where[key]
    else:
        where[key] = value
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=problem) as exc:
        report_spec(read_params(p))
    assert "\n" not in str(exc.value)
