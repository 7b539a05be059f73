"""The experiment layer against dvc.yaml and params.yaml: stage code dependencies cover the
import closure of each stage, every stage output is where the layout says, params.yaml equals
the settings' defaults except the intended differences, and run identity is derived from the
settings classes' own fingerprint fields."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml
from support import ROOT

from sd_darts.errors import UserError
from sd_darts.evaluation.recipes import TrainCifarConfig, TrainImageNetConfig
from sd_darts.experiment import deps, layout, schema, settings
from sd_darts.experiment.runs import run_identity
from sd_darts.search.config import SearchConfig
from sd_darts.spaces.nb201.benchmark import NB201QueryConfig

#: The values of params.yaml that differ from the settings classes' defaults, and why
#: (params.yaml marks each with "differs:").
INTENDED_DIFFERENCES = {
    ("search", "hessian_every"): 1,  # Fig. 2 tracks the eigenvalue every epoch
    ("search", "num_workers"): 4,  # parallel data loading; results do not depend on it
    ("nb201", "weight_decay"): 0.0005,  # NAS-Bench-201's DARTS baseline
    ("nb201", "nesterov"): True,  # NAS-Bench-201's DARTS baseline
    ("nb201", "num_workers"): 4,
}
COMMAND_CLASSES = {
    "search": SearchConfig,
    "nb201": SearchConfig,
    "train_cifar": TrainCifarConfig,
    "train_imagenet": TrainImageNetConfig,
    "nb201_query": NB201QueryConfig,
}


def _default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def test_params_yaml_equals_the_defaults_except_the_intended_differences():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, cls in COMMAND_CLASSES.items():
        expected = {f.name for f in dataclasses.fields(cls)} - set(schema.RESERVED[section])
        assert set(raw[section]) == expected, f"params.yaml {section}: keys differ from {cls.__name__}'s settings"
        for f in dataclasses.fields(cls):
            if f.name in schema.RESERVED[section]:
                continue
            want = INTENDED_DIFFERENCES.get((section, f.name), _default(f))
            assert raw[section][f.name] == want, (
                f"params.yaml {section}.{f.name} = {raw[section][f.name]!r}, default {want!r}"
            )
    for section, cls in schema.PIPELINE_SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert raw[section][f.name] == _default(f), f"params.yaml {section}.{f.name} differs from the default"
    marked = {m.group(1) for m in re.finditer(r"^  (\w+):.*# differs:", (ROOT / "params.yaml").read_text(), re.M)}
    assert marked == {key for _, key in INTENDED_DIFFERENCES}


PROFILES = {"params.yaml": "paper", "params-smoke.yaml": "smoke", "params-fmnist.yaml": "fmnist"}


def test_every_committed_profile_is_listed():
    assert {"params.yaml", *(f.name for f in ROOT.glob("params-*.yaml"))} >= set(PROFILES)


@pytest.mark.parametrize("params", sorted(PROFILES))
def test_every_profile_checks(params):
    p = settings.check_all(str(ROOT / params))
    assert p.profile == PROFILES[params]


@pytest.fixture(scope="module")
def dvc_stages():
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        yield [
            {
                "name": stage.addressing,
                "cmd": stage.cmd,
                "deps": [d.def_path for d in stage.deps],
                "outs": [o.def_path for o in stage.outs],
            }
            for stage in repo.index.stages
        ]


def _covered(path: str, declared: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


def test_every_stage_depends_on_the_code_it_imports(dvc_stages):
    for stage in dvc_stages:
        entry = re.match(r"python -m (sd_darts\.experiment\.stages\.\w+)(?: |$)", stage["cmd"])
        assert entry, f"{stage['name']}: cmd should run a stage module with python -m: {stage['cmd']}"
        module = entry.group(1)
        path = ROOT / (module.replace(".", "/") + ".py")
        assert re.search(r'^if __name__ == "__main__":\n    sys\.exit\(main\(\)\)$', path.read_text(), re.M), path
        needed = deps.closure_paths(module)
        missing = [p for p in needed if not _covered(p, stage["deps"])]
        assert not missing, f"dvc.yaml stage {stage['name']} lacks deps on {missing}"


def test_closure_follows_imports_and_registries():
    search = set(deps.closure_paths("sd_darts.search.loop"))
    assert {
        "sd_darts/spaces/darts/supernet.py",
        "sd_darts/spaces/nb201/supernet.py",
        "sd_darts/search/distill.py",
        "sd_darts/spaces/darts/ops.py",
    } <= search
    assert not any(p.startswith("sd_darts/report/") for p in search)  # reporting never invalidates searches
    assert "sd_darts/evaluation/networks.py" not in search


def test_stage_outputs_are_where_the_layout_says(dvc_stages):
    p = schema.read_params(ROOT / "params.yaml")
    lay = layout.Layout(p.profile)
    expected: set[str] = {p.data.root, str(lay.reports), str(lay.nb201_query), str(lay.plots)}
    for method in p.pipeline.search_methods:
        for seed in p.seeds.search:
            run = lay.search(method, seed)
            expected |= {str(run.run), str(lay.curves(run)), str(lay.headline_run(run))}
            expected |= {str(run.metrics / f) for f in (*layout.SEARCH_FILES, *layout.COLLECTED)}
            expected |= {str(lay.select_retrain(seed).run), str(lay.select_retrain(seed).metrics)}
    for seed in p.seeds.nb201:
        run = lay.nb201_search(seed)
        expected |= {str(run.run), str(lay.curves(run)), str(lay.headline_run(run))}
        expected |= {str(run.metrics / f) for f in (*layout.SEARCH_FILES, *layout.COLLECTED)}
    expected.add(str(lay.genotype))  # the genotype stage's folder: every genotype file it writes
    for genotype in p.pipeline.eval_genotypes:
        for seed in p.seeds.train_cifar:
            run = lay.train_cifar(genotype, seed)
            expected |= {str(run.run), str(lay.curves(run)), str(lay.headline_run(run))}
            expected |= {str(run.metrics / f) for f in (*layout.TRAIN_FILES, *layout.COLLECTED)}
    expected |= {str(lay.runs / "train_imagenet"), str(lay.metrics / "train_imagenet")}
    expected |= {str(lay.headline / f) for f in ("genotype.json", "nb201_query.json", "summary.json", "train_imagenet")}
    for kind in layout.ABLATIONS:
        for value in settings.ablation_values(p, kind):
            for seed in p.seeds.ablation:
                run = lay.ablation(kind, value, seed)
                expected |= {str(run.run), str(run.metrics)}
    declared = {o for stage in dvc_stages for o in stage["outs"]}
    assert declared == expected


_MODULE_A = '''"""Schedules."""

import math

from .ops import thing


def cosine(e, n):
    """Cosine annealing."""
    return 0.5 * (1 + math.cos(math.pi * e / n))


def step(e):
    return 0.1 ** (e // 30)
'''


def _identity(folder, **modules):
    folder.mkdir()
    for name, text in modules.items():
        (folder / f"{name}.py").write_text(text)
    return deps.source_identity(folder / f"{name}.py" for name in modules)


_STEP = "def step(e):\n    return 0.1 ** (e // 30)\n"


def test_run_identity_ignores_documentation_and_moves_but_not_code(tmp_path):
    base = _identity(tmp_path / "base", a=_MODULE_A, b="X = 1\n")
    same = {
        "docstrings and comments": _MODULE_A.replace("Cosine annealing.", "Cosine annealing (DARTS).")
        .replace('"""Schedules."""', '"""Schedules of the search and the evaluation."""')
        .replace("def step(e):", "# the ImageNet recipe\ndef step(e):  # decays by 10 every 30 epochs"),
        "a new docstring": _MODULE_A.replace("def step(e):\n", 'def step(e):\n    """Step decay."""\n'),
        "reformatting": _MODULE_A.replace(
            "(1 + math.cos(math.pi * e / n))", "(\n        1 + math.cos(math.pi * e / n)\n    )"
        ),
    }
    for i, (what, text) in enumerate(same.items()):
        assert _identity(tmp_path / f"same{i}", a=text, b="X = 1\n") == base, what
    # step() moved from a to b; a imports it from there, b now needs math too
    moved_a = _MODULE_A.replace("\n\n" + _STEP, "").replace(
        "from .ops import thing", "from .b import step\nfrom .ops import thing"
    )
    assert moved_a != _MODULE_A and _STEP not in moved_a
    moved = _identity(tmp_path / "moved", a=moved_a, b="import math\n\nX = 1\n\n\n" + _STEP)
    assert moved == base, "a pure move between modules of the closure"
    changed = {
        "a constant": _MODULE_A.replace("0.5 *", "0.4 *"),
        "an operator": _MODULE_A.replace("e // 30", "e / 30"),
        "a default argument": _MODULE_A.replace("def step(e):", "def step(e=0):"),
        "a string that is not a docstring": _MODULE_A.replace("def step(e):\n", 'def step(e):\n    print("x")\n'),
        "a library import": _MODULE_A.replace("import math", "import cmath as math"),
        "a removed definition": _MODULE_A.replace("\n\n" + _STEP, ""),
    }
    for i, (what, text) in enumerate(changed.items()):
        assert text != _MODULE_A, what
        assert _identity(tmp_path / f"changed{i}", a=text, b="X = 1\n") != base, what
    assert _identity(tmp_path / "other", a=_MODULE_A, b="X = 2\n") != base, "a change in another file of the closure"


def test_run_identity_of_the_search_survives_a_docstring_edit(tmp_path):
    """The real closure: rewriting every docstring of the search's modules keeps code_hash."""
    import ast

    rewritten = []
    for i, path in enumerate(deps.closure("sd_darts.search.loop")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            first = body[0] if isinstance(body, list) and body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                first.value.value = "rewritten"
        out = tmp_path / f"m{i}.py"
        out.write_text(ast.unparse(tree))
        rewritten.append(out)
    assert deps.source_identity(rewritten) == deps.code_hash("sd_darts.search.loop")


def test_run_identity_is_the_settings_fingerprint_plus_code():
    cfg = SearchConfig(dataset="digits", epochs=2, warmup_epochs=1)
    cfg.validate()
    base = run_identity(cfg, "sd_darts.search.loop")
    for unfingerprinted in ({"hessian_every": 3}, {"num_workers": 2}, {"device": "cpu"}, {"out": "elsewhere"}):
        assert run_identity(dataclasses.replace(cfg, **unfingerprinted), "sd_darts.search.loop") == base
    assert run_identity(dataclasses.replace(cfg, seed=7), "sd_darts.search.loop") != base
    assert run_identity(dataclasses.replace(cfg, window=3), "sd_darts.search.loop") != base


def test_genotype_selection_picks_the_best_then_the_lower_seed(tmp_path, monkeypatch):
    import json

    from sd_darts.experiment.stages import genotype as genotype_stage
    from sd_darts.genotypes import DARTS_V2, SD_DARTS, genotype_to_dict

    params = tmp_path / "params.yaml"  # SD-DARTS searched alone: no DARTS baseline to pick
    text = (ROOT / "params-smoke.yaml").read_text()
    params.write_text(text.replace("search_methods: [darts, sd-darts]", "search_methods: [sd-darts]"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SD_DARTS_PARAMS", str(params))
    p = schema.read_params(params)
    assert p.pipeline.search_methods == ["sd-darts"]
    lay = layout.Layout(p.profile)
    scores = {0: 50.0, 1: 80.0}
    for seed, acc in scores.items():
        folder = lay.search("sd-darts", seed).metrics
        folder.mkdir(parents=True)
        g = DARTS_V2 if seed == 1 else SD_DARTS
        (folder / "summary.json").write_text(json.dumps({"supernet_valid_acc": acc, "genotype": genotype_to_dict(g)}))
    assert genotype_stage.main([]) == 0
    assert json.loads(lay.genotype_file("selected").read_text()) == genotype_to_dict(DARTS_V2)
    selection = json.loads((lay.genotype / "selection.json").read_text())
    assert selection["selected"] == "sd-darts-s1" and selection["profile"] == "smoke"
    assert "darts_baseline" not in selection and not lay.genotype_file("darts").exists()
    # a tie goes to the lower seed
    (lay.search("sd-darts", 0).metrics / "summary.json").write_text(
        json.dumps({"supernet_valid_acc": 80.0, "genotype": genotype_to_dict(SD_DARTS)})
    )
    assert genotype_stage.main([]) == 0
    assert json.loads((lay.genotype / "selection.json").read_text())["selected"] == "sd-darts-s0"


def test_genotype_stage_writes_the_darts_baseline_by_the_supernet_criterion(tmp_path, monkeypatch):
    import json

    from sd_darts.experiment.stages import genotype as genotype_stage
    from sd_darts.genotypes import DARTS_V1, DARTS_V2, SD_DARTS, genotype_to_dict

    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params-fmnist.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SD_DARTS_PARAMS", str(params))
    p = schema.read_params(params)
    lay = layout.Layout(p.profile)
    runs = {("sd-darts", 0): (70.0, SD_DARTS), ("sd-darts", 1): (60.0, DARTS_V1), ("darts", 0): (55.0, DARTS_V1)}
    runs[("darts", 1)] = (65.0, DARTS_V2)
    for (method, seed), (acc, g) in runs.items():
        folder = lay.search(method, seed).metrics
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"supernet_valid_acc": acc, "genotype": genotype_to_dict(g)}))
    assert genotype_stage.main([]) == 0
    assert json.loads(lay.genotype_file("selected").read_text()) == genotype_to_dict(SD_DARTS)
    assert json.loads(lay.genotype_file("darts").read_text()) == genotype_to_dict(DARTS_V2)
    selection = json.loads((lay.genotype / "selection.json").read_text())
    assert selection["selected"] == "sd-darts-s0" and selection["darts_baseline"] == "darts-s1"
    assert [c["run"] for c in selection["darts_candidates"]] == ["darts-s0", "darts-s1"]
    stats = json.loads((lay.genotype / "stats.json").read_text())
    assert set(stats) >= {"selected", "paper", "darts"} and stats["darts"]["cifar"]["params_m"] > 0


def test_evaluating_the_darts_baseline_needs_darts_searches(tmp_path):
    text = (
        (ROOT / "params-fmnist.yaml")
        .read_text()
        .replace("search_methods: [darts, sd-darts]", "search_methods: [sd-darts]")
    )
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(
        UserError,
        match=r"pipeline.eval_genotypes: darts \(the DARTS baseline.s genotype\) needs darts in pipeline.search_methods",
    ):
        settings.check_all(str(tmp_path / "params.yaml"))


def test_a_bad_params_file_fails_in_one_line_naming_the_key(tmp_path, capsys):
    from sd_darts.cli import main

    text = (ROOT / "params-smoke.yaml").read_text()
    for old, new, named in (
        ("  search: [0, 1]\n", "  search: [0, 1e20]\n", "seeds.search"),
        ("  learning_rate: 0.025\n", "  learning_rate: .inf\n", "learning_rate"),
        ("  layers: 3\n", "  layers: 1\n", "search.layers"),
        ("  device: cpu\n", "  device: mps\n", "device"),
        ("  runner: local\n", "  runner: podman\n", "pipeline.runner"),
        ("profile: smoke\n", "profile: Smoke Profile\n", "profile"),
    ):
        assert old in text, old
        bad = tmp_path / "bad.yaml"
        bad.write_text(text.replace(old, new, 1))
        assert main(["check-params", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and named in err, err


def test_imports_point_downwards():
    """The library never imports the experiment layer, the commands or the CLI (docs/ARCHITECTURE.md)."""
    upper = ("sd_darts.experiment", "sd_darts.commands", "sd_darts.cli", "sd_darts.__main__")
    for path in sorted(deps.PACKAGE_DIR.rglob("*.py")):
        name = deps._module_name(path)
        if name.startswith(upper):
            continue
        imported = deps._imports(path)
        assert not [m for m in imported if m.startswith(upper)], f"{name} imports {sorted(imported)}"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_committed_headline_metrics_are_what_the_stages_write(name):
    """``metrics/headline/<profile>/`` is regenerated from the committed run records by the same
    code the stages call (a run's headline, the genotype counts, the report's summary)."""
    from sd_darts.experiment import headline
    from sd_darts.experiment.report_spec import report_spec
    from sd_darts.report import load_metrics
    from sd_darts.utils import files

    p = schema.read_params(ROOT / name)
    lay = layout.Layout(p.profile)
    root = ROOT / lay.metrics
    summary = headline.summary(load_metrics(root, report_spec(p)))
    assert files.read_json(ROOT / lay.headline / "summary.json") == summary
    for kind in headline.RUN_KINDS:
        for run in sorted((root / kind).glob("*/provenance.json")):
            got = files.read_json(ROOT / lay.headline / kind / f"{run.parent.name}.json")
            assert got == headline.run_headline(kind, run.parent)
    if (root / "genotype" / "stats.json").exists():
        stats = files.read_json(root / "genotype" / "stats.json")
        assert files.read_json(ROOT / lay.headline / "genotype.json") == headline.genotype_headline(stats)


def test_plotted_curves_count_epochs_from_one_like_the_report():
    """``dvc plots`` reads metrics/<profile>/curves/: the run's curves with epochs 1, 2, ... (the
    report's numbering), every other value unchanged."""
    import pandas as pd

    root = ROOT / "metrics" / "smoke"
    published = sorted((root / "curves").rglob("*.tsv"))
    assert published
    for path in published:
        kind, run = path.parent.name, path.stem
        plotted = pd.read_csv(path, sep="\t")
        original = pd.read_csv(root / kind / run / "curves.tsv", sep="\t")
        assert list(plotted["epoch"]) == list(range(1, len(original) + 1)), path
        pd.testing.assert_frame_equal(plotted.drop(columns="epoch"), original.drop(columns="epoch"))
