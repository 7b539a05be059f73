"""The DVC pipeline: params validation, stage wiring (a params change reruns exactly the stages
that read it), and resumption of persisted runs.  The full smoke `dvc repro` runs in
scripts/pipeline_checks.sh, not here."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import ROOT

from sd_darts.cli import main as cli_main
from sd_darts.experiment import execute, runs
from sd_darts.experiment.layout import Layout, RunPaths
from sd_darts.experiment.schema import SECTIONS, read_params
from sd_darts.experiment.settings import check_all

DVC = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
needs_dvc = pytest.mark.skipif(not Path(DVC).exists(), reason="dvc is not installed (pip install '.[pipeline]')")


def _params(name="params.yaml"):
    return yaml.safe_load((ROOT / name).read_text())


# ---------------------------------------------------------------- params files


@pytest.mark.parametrize("name", ["params.yaml", "params-smoke.yaml", "params-fmnist.yaml"])
def test_shipped_params_files_are_valid_and_complete(name):
    p = check_all(str(ROOT / name))
    assert set(_params(name)) == set(SECTIONS)
    # params.yaml is the paper run; the smoke profile runs offline on digits
    if name == "params.yaml":
        assert p.profile == "paper" and p.data.dataset == "cifar10"
        s = p.section("search")
        assert (s["warmup_epochs"], s["window"], s["sd_lambda"], s["epochs"], s["batch_size"]) == (25, 2, 1.0, 50, 64)
        assert s["hessian_every"] == 1
        assert p.ablation.warmup_epochs_values == list(range(0, 41, 5)) and p.ablation.window_for_warmup_sweep == 1
        assert p.ablation.window_values == [1, 2, 3, 4, 5, 6] and p.ablation.warmup_epochs_for_window_sweep == 25
    elif name == "params-fmnist.yaml":
        # real data, the fast path, both methods searched and both genotypes trained from scratch
        assert p.profile == "fmnist" and p.data.dataset == "fashion-mnist"
        s = p.section("search")
        assert (s["impl"], s["fast_step"]) == ("fused", True) and s["hessian_every"] > 0
        assert len(p.seeds.search) >= 2 and set(p.pipeline.search_methods) == {"darts", "sd-darts"}
        assert (
            set(p.pipeline.eval_genotypes) == {"selected", "darts"}
            and p.section("train_cifar")["max_steps_per_epoch"] is None
        )
    else:
        assert p.profile == "smoke" and p.data.dataset == "digits"


@pytest.mark.parametrize("name", ["params-smoke.yaml", "params-fmnist.yaml"])
def test_every_profile_shares_one_structure(name):
    paper, other = _params(), _params(name)
    assert set(paper) == set(other)
    for section in paper:
        if isinstance(paper[section], dict):
            assert set(paper[section]) == set(other[section]), section


BAD = [
    (("search", "warmup_epoch"), 25, "search.warmup_epoch is not a known setting"),
    (("search", "epochs"), "fifty", "search.epochs: must be an integer, got 'fifty'"),
    (("search", "sd_lambda"), "one", "search.sd_lambda: must be a number"),
    (("search", "sd_lambda"), float("inf"), "search.sd_lambda: must be a finite number"),
    (("search", "seed"), 3, "search.seed is set by the pipeline (from seeds)"),
    (("train_cifar", "layers"), 2.5, "train_cifar.layers: must be an integer"),
    (("seeds", "search"), [0, "x"], "seeds.search: item 1: must be an integer"),
    (("seeds", "search"), [0, 0], "seeds.search: has duplicate values"),
    (("seeds", "search"), [10**20], "seeds.search: item 0: must be at most 4294967295"),
    (("pipeline", "train_imagenet"), "yes", "pipeline.train_imagenet: must be true or false"),
    (
        ("pipeline", "eval_genotypes"),
        ["selected", "best"],
        "pipeline.eval_genotypes: item 1: must be one of selected, paper",
    ),
    (("ablation", "search"), {"warmup_epochs": 3}, "ablation.search.warmup_epochs is set by"),
    (
        ("ablation", "warmup_epochs_for_window_sweep"),
        50,
        "ablation (window point 1).warmup_epochs: must be smaller than --epochs",
    ),
    (("nb201_query", "bench"), "x.pth", "nb201_query.bench is not a known setting"),
    (("nb201_query", "benchmark"), "x.pth", "nb201_query.benchmark is set by the pipeline (from data.nb201_benchmark)"),
    (("reportx",), {}, "reportx is not a known section"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[".".join(b[0]) for b in BAD])
def test_bad_params_fail_in_one_line_naming_the_key(tmp_path, capsys, path, value, message):
    data = _params()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert cli_main(["check-params", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"sd-darts check-params: error: {bad}: ") and message in err, err


def test_missing_section_and_missing_key(tmp_path, capsys):
    data = _params()
    del data["ablation"]
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(data))
    assert cli_main(["check-params", str(tmp_path / "a.yaml")]) == 2
    assert "section 'ablation:' is missing" in capsys.readouterr().err
    data = _params()
    del data["pipeline"]["select_method"]
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(data))
    assert cli_main(["check-params", str(tmp_path / "b.yaml")]) == 2
    assert "pipeline.select_method is missing" in capsys.readouterr().err


def test_the_data_stage_refuses_bad_params_before_any_work(tmp_path):
    data = _params("params-smoke.yaml")
    data["train_cifar"]["epochs"] = -1  # read by another stage: the data stage, first, checks every run
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(data))
    env = {**os.environ, "SD_DARTS_PARAMS": str(bad), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "sd_darts.experiment.stages.data"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert lines == [f"data: error: {bad}: train_cifar.epochs: must be at least 1, got -1"], res.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "metrics").exists() and not (tmp_path / "data").exists()


# ---------------------------------------------------------------- dvc.yaml wiring


def test_dvc_yaml_declares_persisted_runs_and_git_tracked_metrics():
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = _params()
    for name, stage in spec["stages"].items():
        assert stage["cmd"].startswith("python -m sd_darts.experiment.stages."), name
        for p in stage.get("params", []):
            node = params
            for key in str(p).split("."):
                assert key in node, f"{name}: param {p} is not in params.yaml"
                node = node[key]
        for out in stage.get("outs", []):
            path, opts = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            if path.startswith("runs/"):
                assert opts.get("persist") is True, f"{name}: {path} must be persist: true (resume)"
            if path.startswith(("metrics/", "reports")):
                assert opts.get("cache") is False, f"{name}: {path} must be cache: false (committed to git)"


def _numbers_only(node, where):
    if isinstance(node, dict):
        for key, value in node.items():
            _numbers_only(value, f"{where}:{key}")
    else:
        assert isinstance(node, (int, float)) and not isinstance(node, bool), f"{where} is not a number: {node!r}"


def test_dvc_metrics_are_numbers_only_and_every_profile_is_reachable():
    """What ``dvc metrics show`` reads: no stage declares a metric of its own profile (missing
    in a fresh clone of the paper profile); the top-level folder holds numbers only, a few per
    run, and the committed summary of both profiles."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert all("metrics" not in stage for stage in spec["stages"].values())
    assert spec["metrics"] == ["metrics/headline"]
    found = sorted((ROOT / "metrics" / "headline").rglob("*"))
    jsons = [f for f in found if f.is_file()]
    assert jsons and all(f.suffix == ".json" for f in jsons), found
    for f in jsons:
        data = json.loads(f.read_text())
        assert isinstance(data, dict), f
        _numbers_only(data, str(f.relative_to(ROOT)))
        assert len(data) <= 6, f"{f}: a headline file keeps a few numbers"
    for profile in ("paper", "smoke"):
        assert (ROOT / "metrics" / "headline" / profile / "summary.json").is_file()
    search = json.loads((ROOT / "metrics/headline/smoke/search/sd-darts-s0.json").read_text())
    assert set(search) == {"supernet_valid_acc", "skip_connections", "eigenvalue"}
    assert set(json.loads((ROOT / "metrics/headline/smoke/train_cifar/selected-s0.json").read_text())) == {"test_error"}


def test_dvc_metrics_show_in_a_fresh_clone_of_the_paper_profile(tmp_path):
    """A fresh clone (params.yaml: the paper profile, nothing run) shows the committed numbers
    without "failed to load"."""
    if not Path(DVC).exists() or shutil.which("git") is None:
        pytest.skip("dvc or git is not installed")
    for name in ("dvc.yaml", "params.yaml", "params-smoke.yaml", ".dvcignore", "metrics"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=tmp_path, check=True)
    res = subprocess.run([DVC, "metrics", "show", "--json"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "failed to load" not in res.stdout + res.stderr
    shown = json.loads(res.stdout)
    (revision,) = shown.values()
    files = revision["data"]
    assert not [f for f, r in files.items() if "error" in r], files
    assert files["metrics/headline/smoke/train_cifar/selected-s0.json"]["data"]["test_error"] > 0
    assert "metrics/headline/paper/summary.json" in files


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A copy of the pipeline (smoke profile) whose every stage is recorded as done in
    dvc.lock, without running anything: outputs are placeholders, ``dvc commit -f``."""
    if not Path(DVC).exists():
        pytest.skip("dvc is not installed")
    ws = tmp_path_factory.mktemp("pipeline")
    for name in ("dvc.yaml", "sd_darts"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, ws / name)
    shutil.copy(ROOT / "params-smoke.yaml", ws / "params.yaml")
    for cache in ws.rglob("__pycache__"):
        shutil.rmtree(cache)
    run = lambda *a: subprocess.run([DVC, *a], cwd=ws, capture_output=True, text=True, check=True)
    run("init", "--no-scm", "-q")
    from dvc.repo import Repo

    repo = Repo(str(ws))
    stages = repo.index.stages
    for stage in stages:
        for out in stage.outs:
            Path(out.fs_path).mkdir(parents=True, exist_ok=True)
            (Path(out.fs_path) / "placeholder.txt").write_text(stage.name + "\n")
    for stage in stages:
        for dep in stage.deps:
            if not Path(dep.fs_path).exists():
                Path(dep.fs_path).write_text("{}\n")
    names = sorted(s.name for s in stages)
    repo.close()
    run("commit", "-f", "-q")
    assert json.loads(run("status", "--json").stdout) == {}
    return ws, names


def _changed(ws: Path, section: str, key: str, value) -> set[str]:
    path = ws / "params.yaml"
    original = path.read_text()
    data = yaml.safe_load(original)
    data[section][key] = value
    path.write_text(yaml.safe_dump(data))
    try:
        res = subprocess.run([DVC, "status", "--json"], cwd=ws, capture_output=True, text=True, check=True)
    finally:
        path.write_text(original)
    return set(json.loads(res.stdout))


def _matching(names, *prefixes):
    return {n for n in names if n.split("@")[0] in prefixes}


@needs_dvc
def test_stage_names_follow_the_matrices(workspace):
    _ws, names = workspace
    smoke = _params("params-smoke.yaml")
    assert len(_matching(names, "search")) == 2 * len(smoke["seeds"]["search"])
    assert {
        "search@darts-0",
        "search@sd-darts-1",
        "train_cifar@selected-0",
        "train_cifar@paper-1",
        "nb201_search@1",
        "select_retrain@1",
        "ablation_warmup@2-0",
        "ablation_window@3-0",
        "genotype",
        "report",
        "train_imagenet",
        "nb201_query",
        "data",
    } <= set(names)


# Every change also reruns the data stage: it checks the settings of every run of the file.
WIRING = [
    ("search", "sd_lambda", 0.5, ("search", "ablation_warmup", "ablation_window", "report")),
    ("search", "num_workers", 2, ("search", "ablation_warmup", "ablation_window", "report")),
    ("train_cifar", "epochs", 7, ("train_cifar", "select_retrain", "ablation_warmup", "ablation_window")),
    ("nb201", "epochs", 7, ("nb201_search",)),
    ("nb201_query", "best", False, ("nb201_query",)),
    ("ablation", "window_for_warmup_sweep", 2, ("ablation_warmup", "report")),
    ("ablation", "warmup_epochs_for_window_sweep", 2, ("ablation_window", "report")),
    ("pipeline", "select_criterion", "retrain", ("genotype", "select_retrain")),
    ("pipeline", "train_imagenet", True, ("train_imagenet",)),
    ("pipeline", "stack_search_seeds", True, ("search",)),
    ("pipeline", "imagenet_nproc", 3, ("train_imagenet",)),
    ("pipeline", "imagenet_nodes", 2, ("train_imagenet",)),
    ("pipeline", "runner", "slurm", ()),  # where a stage runs changes none of its results
    ("pipeline", "slurm", {"partition": "gpu"}, ()),
    ("train_imagenet", "epochs", 7, ("train_imagenet",)),
    ("data", "download", True, ()),
    ("data", "nb201_benchmark_sha256", "0" * 64, ("nb201_query",)),
    ("report", "title", "another title", ("report",)),
]


@needs_dvc
@pytest.mark.parametrize("section,key,value,stages", WIRING, ids=[f"{w[0]}.{w[1]}" for w in WIRING])
def test_a_params_change_reruns_exactly_the_stages_that_read_it(workspace, section, key, value, stages):
    ws, names = workspace
    assert _changed(ws, section, key, value) == _matching(names, "data", *stages)


# ---------------------------------------------------------------- persisted runs resume


def _search_cfg(out: Path, **over):
    from sd_darts.search.config import SearchConfig
    from sd_darts.utils import config as cfgmod

    values = dict(
        method="sd-darts",
        dataset="digits",
        image_size=16,
        epochs=2,
        batch_size=16,
        init_channels=4,
        layers=3,
        max_steps_per_epoch=2,
        warmup_epochs=0,
        window=1,
        hessian_every=0,
        device="cpu",
        num_workers=0,
        seed=0,
        out=str(out),
    )
    values.update(over)
    return cfgmod.from_mapping(SearchConfig, values, "test")


def _paths(root: Path, name: str) -> RunPaths:
    return RunPaths("search", name, root / "runs" / name, root / "metrics" / name)


@pytest.fixture
def smoke_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "params-smoke.yaml", tmp_path / "params.yaml")
    return read_params(tmp_path / "params.yaml")


def test_prepare_run_dir_resumes_reuses_or_starts_afresh(tmp_path):
    out = tmp_path / "run"
    cfg = _search_cfg(out)
    identity = runs.run_identity(cfg, "sd_darts.search.loop")
    assert runs.prepare_run_dir(out, identity) == "fresh"
    (out / "checkpoint.pt").write_bytes(b"stand-in")
    assert runs.prepare_run_dir(out, identity) == "resume"
    assert (out / "checkpoint.pt").exists()
    other = runs.run_identity(_search_cfg(out, sd_lambda=0.5), "sd_darts.search.loop")
    assert runs.prepare_run_dir(out, other) == "fresh"  # changed setting: stale checkpoint removed
    assert not (out / "checkpoint.pt").exists()
    runs.finish_run(out, other, runs.provenance("smoke", "test", out, "cpu", "sd-darts search"))
    assert runs.prepare_run_dir(out, other) == "reuse"
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["device"] == "cpu" and prov["stage"] == "test" and prov["profile"] == "smoke" and "git_rev" in prov
    assert {"python", "torch", "cuda", "cudnn", "gpu", "image_id"} <= set(prov)
    # a training run whose genotype file changed content (same path) is stale
    from sd_darts.evaluation.recipes import TrainCifarConfig
    from sd_darts.genotypes import DARTS_V2, SD_DARTS, save_genotype
    from sd_darts.utils import config as cfgmod

    g = tmp_path / "genotype.json"
    save_genotype(g, SD_DARTS)
    tout = tmp_path / "train"
    tcfg = cfgmod.from_mapping(
        TrainCifarConfig,
        {"genotype": str(g), "out": str(tout), "dataset": "digits", "image_size": 16, "auxiliary_weight": 0.0},
        "test",
    )
    tid = runs.run_identity(tcfg, "sd_darts.evaluation.train")
    assert runs.prepare_run_dir(tout, tid) == "fresh"
    runs.finish_run(tout, tid, {})
    assert runs.prepare_run_dir(tout, runs.run_identity(tcfg, "sd_darts.evaluation.train")) == "reuse"
    save_genotype(g, DARTS_V2)
    assert runs.prepare_run_dir(tout, runs.run_identity(tcfg, "sd_darts.evaluation.train")) == "fresh"
    # a folder that was not made by the pipeline is never resumed blindly
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "checkpoint.pt").write_bytes(b"?")
    assert runs.prepare_run_dir(stray, identity) == "fresh" and not (stray / "checkpoint.pt").exists()


def test_interrupted_stage_resumes_to_the_same_result(tmp_path, smoke_params, monkeypatch):
    """A search stage killed after its first epoch resumes from the persisted checkpoint and
    ends exactly where an uninterrupted run ends."""
    import sd_darts.utils.checkpoint as checkpoint_mod
    from sd_darts.utils.runtime import Interrupted

    ref = execute.search_once(smoke_params, _search_cfg(tmp_path / "runs" / "ref"), _paths(tmp_path, "ref"), "test")

    original = checkpoint_mod.save_checkpoint
    calls = []

    def save_then_die(*args, **kwargs):
        original(*args, **kwargs)
        calls.append(1)
        raise KeyboardInterrupt  # the machine goes away right after epoch 1 is saved

    paths = _paths(tmp_path, "run")
    cfg = _search_cfg(paths.run)
    monkeypatch.setattr(checkpoint_mod, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        execute.search_once(smoke_params, cfg, paths, "test")
    monkeypatch.setattr(checkpoint_mod, "save_checkpoint", original)
    assert calls == [1] and not (paths.run / "summary.json").exists()
    identity = runs.run_identity(cfg, "sd_darts.search.loop")
    assert runs.prepare_run_dir(paths.run, identity) == "resume"
    summary = execute.search_once(smoke_params, cfg, paths, "test")
    assert summary["genotype"] == ref["genotype"]
    assert (
        summary["final_valid_acc"] == ref["final_valid_acc"]
        and summary["supernet_valid_acc"] == ref["supernet_valid_acc"]
    )
    curves = (paths.metrics / "curves.tsv").read_text().splitlines()
    assert curves[0].startswith("epoch\t") and [c.split("\t")[0] for c in curves[1:]] == ["0", "1"]
    ref_curves = (_paths(tmp_path, "ref").metrics / "curves.tsv").read_text().splitlines()
    col = curves[0].split("\t").index("valid/acc")
    assert [c.split("\t")[col] for c in curves[1:]] == [c.split("\t")[col] for c in ref_curves[1:]]
    prov = json.loads((paths.metrics / "provenance.json").read_text())
    assert prov["stage"] == "test" and prov["profile"] == "smoke"
    assert runs.prepare_run_dir(paths.run, identity) == "reuse"


def test_equivalent_command_reproduces_the_settings():
    from sd_darts.cli import build_parser
    from sd_darts.search.config import SearchConfig
    from sd_darts.utils import config as cfgmod

    cfg = _search_cfg(Path("runs/x"), nesterov=True, unrolled=False)
    line = runs.command_line("search", cfg)
    assert line.startswith("sd-darts search ") and "--nesterov" in line
    args = build_parser().parse_args(line.split()[1:])
    again = cfgmod.resolve(SearchConfig, "search", args)
    assert cfgmod.to_dict(again) == cfgmod.to_dict(copy.deepcopy(cfg))


def test_multi_process_runs_go_through_torchrun(tmp_path, smoke_params, monkeypatch):
    """pipeline.imagenet_nproc > 1: the stage launches the recorded command under torchrun
    (DDP; gloo on CPU here) and collects the run like any other."""
    from sd_darts.evaluation.recipes import TrainCifarConfig
    from sd_darts.utils import config as cfgmod

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = cfgmod.from_mapping(
        TrainCifarConfig,
        dict(
            genotype="SD_DARTS",
            dataset="digits",
            image_size=16,
            epochs=1,
            batch_size=16,
            init_channels=4,
            layers=3,
            auxiliary_weight=0.0,
            max_steps_per_epoch=2,
            num_workers=0,
            device="cpu",
            out="runs/t",
        ),
        "test",
    )
    paths = RunPaths("train_cifar", "t", Path("runs/t"), Path("metrics/t"))
    metrics = execute.train_once(smoke_params, cfg, paths, "test", "train-cifar", nproc=2)
    assert metrics["world_size"] == 2
    prov = json.loads(Path("metrics/t/provenance.json").read_text())
    assert prov["command"].startswith("torchrun --standalone --nproc_per_node 2 -m sd_darts train-cifar ")
    assert runs.prepare_run_dir("runs/t", runs.run_identity(cfg, "sd_darts.evaluation.train")) == "reuse"


def test_nb201_query_stage_writes_what_the_report_reads(tmp_path, smoke_params, monkeypatch):
    """The query stage with a benchmark (a stand-in for the 4.7 GB file, answering like
    sd_darts.spaces.nb201.benchmark.Benchmark) writes the Table 4 row that the report renders."""
    from sd_darts.experiment.report_spec import report_spec
    from sd_darts.experiment.stages import nb201_query
    from sd_darts.genotypes import NB201Genotype, save_genotype
    from sd_darts.report import build_report
    from sd_darts.spaces.nb201 import benchmark as nb201_bench

    layout = Layout(smoke_params.profile)
    cols = [c.key for c in nb201_bench.COLUMNS]
    archs = {}
    for seed, ops in ((0, ("nor_conv_3x3",) * 6), (1, ("skip_connect",) + ("nor_conv_3x3",) * 5)):
        g = NB201Genotype(ops)
        save_genotype(layout.nb201_search(seed).metrics / "genotype.json", g)
        archs[g.arch_str] = [90.0 + seed, 93.0 + seed, 70.0, 71.0 + seed, 45.0, 46.0 - seed]

    class StandIn:
        path = tmp_path / "NAS-Bench-201-v1_1-096897.pth"

        def query(self, genotype):
            return {"arch": genotype.arch_str, "index": 7, **dict(zip(cols, archs[genotype.arch_str]))}

        def best(self, column):
            return {"by": column, **self.query(NB201Genotype(("nor_conv_3x3",) * 6))}

    StandIn.path.write_bytes(b"stand-in")
    monkeypatch.setattr(nb201_query, "load_benchmark", lambda path: StandIn())
    data = _params("params-smoke.yaml")
    data["data"]["nb201_benchmark"] = str(StandIn.path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    assert nb201_query.main([]) == 0
    q = json.loads(layout.nb201_query.read_text())
    assert q["status"] == "ok" and q["row"]["cifar10_valid"] == {"mean": 90.5, "std": 0.5}
    assert [r["seed"] for r in q["per_seed"]] == [0, 1] and q["profile"] == "smoke"
    build_report(layout.metrics, layout.reports, report_spec(read_params("params.yaml")))
    row = next(
        r for r in (layout.reports / "table4_nb201.md").read_text().splitlines() if "SD-DARTS (this pipeline)" in r
    )
    assert "90.50 ± 0.50" in row and "45.50 ± 0.50" in row and "NAS-Bench-201-v1_1-096897.pth" in row

    # a recorded checksum that the file does not match: refused before loading
    data["data"]["nb201_benchmark_sha256"] = "0" * 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    assert nb201_query.main([]) == 2

    # without the file: a clear "not provided" line, and Table 4 says not run
    StandIn.path.unlink()
    assert nb201_query.main([]) == 0
    q = json.loads(layout.nb201_query.read_text())
    assert q["status"] == "not run" and q["reason"].startswith("benchmark file not provided")


def test_darts_selection_protocol_trains_each_candidate_on_held_out_data(tmp_path, monkeypatch):
    """select_criterion: retrain (DARTS §3.2): each candidate is trained briefly from scratch on
    the first half of the training images and scored on the second; the genotype stage picks
    the best.  With the default criterion the stage records "not run"."""
    from sd_darts.experiment.stages import genotype, select_retrain
    from sd_darts.genotypes import DARTS_V2, SD_DARTS, genotype_to_dict

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = _params("params-smoke.yaml")
    data["seeds"]["search"] = [0, 1]
    data["pipeline"]["search_methods"] = ["sd-darts"]  # the DARTS baseline is tested in test_experiment.py
    data["train_cifar"].update(init_channels=4, layers=3, max_steps_per_epoch=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    layout = Layout("smoke")
    assert select_retrain.main(["--seed", "0"]) == 0
    status = json.loads((layout.select_retrain(0).metrics / "status.json").read_text())
    assert status["status"] == "not run" and "select_criterion" in status["reason"]

    data["pipeline"]["select_criterion"] = "retrain"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    for seed, g in ((0, SD_DARTS), (1, DARTS_V2)):
        folder = layout.search("sd-darts", seed).metrics
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "genotype.json").write_text(json.dumps(genotype_to_dict(g)))
        (folder / "summary.json").write_text(
            json.dumps({"supernet_valid_acc": 10.0 * seed, "genotype": genotype_to_dict(g)})
        )
        assert select_retrain.main(["--seed", str(seed)]) == 0
        metrics = json.loads((layout.select_retrain(seed).metrics / "metrics.json").read_text())
        assert metrics["evaluated_on"] == "held-out part of the training set" and metrics["epochs"] == 2
        config = yaml.safe_load((layout.select_retrain(seed).metrics / "config.yaml").read_text())
        assert config["holdout_portion"] == 0.5
    assert genotype.main([]) == 0
    selection = json.loads((layout.genotype / "selection.json").read_text())
    scores = {c["seed"]: c["retrain"] for c in selection["candidates"]}
    best = max(scores, key=lambda s: (scores[s], -s))
    assert selection["selected"] == f"sd-darts-s{best}" and "held-out" in selection["rule"]


def test_stacked_search_seeds_stage_trains_all_seeds_once_and_each_stage_collects_its_own(tmp_path, monkeypatch):
    """pipeline.stack_search_seeds: the first search stage of a method trains every seeds.search at
    once into their run folders; the next stage reuses its folder; a lost folder restarts the group."""
    from sd_darts.errors import UserError

    monkeypatch.chdir(tmp_path)
    data = _params("params-smoke.yaml")
    data["pipeline"]["stack_search_seeds"] = True
    data["search"].update(epochs=2, max_steps_per_epoch=2, limit_samples=256)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"pipeline.stack_search_seeds: true .* search.impl: fused"):
        check_all(path)  # the smoke profile runs the reference step with the Fig. 2 Hessian
    data["search"].update(fast_step=True, impl="fused", hessian_every=0)
    path.write_text(yaml.safe_dump(data))
    p = check_all(path)

    layout = Layout(p.profile)
    s0, s1 = layout.search("sd-darts", 0), layout.search("sd-darts", 1)
    first = execute.search_stacked_once(p, "sd-darts", 0, "search@sd-darts-0")
    assert first["stacked_with_seeds"] == [0, 1] and first["seed"] == 0
    assert (s0.metrics / "genotype.json").is_file() and not s1.metrics.exists()
    assert json.loads((s1.run / runs.STAMP).read_text())["status"] == "finished"
    made = (s1.run / "checkpoint.pt").stat().st_mtime_ns
    second = execute.search_stacked_once(p, "sd-darts", 1, "search@sd-darts-1")
    assert (s1.run / "checkpoint.pt").stat().st_mtime_ns == made  # reused, not retrained
    assert second["seed"] == 1 and (s1.metrics / "summary.json").is_file()
    prov = json.loads((s1.metrics / "provenance.json").read_text())
    assert prov["stage"] == "search@sd-darts-0" and prov["stacked_seeds"] == [0, 1] and "--seeds 0,1" in prov["command"]
    # A single-seed run of the same settings has another identity: it never reuses a stacked folder.
    from sd_darts.experiment.settings import search_settings

    single = runs.run_identity(search_settings(p, "sd-darts", 1), "sd_darts.search.loop")
    assert json.loads((s1.run / runs.STAMP).read_text())["identity"] != single

    shutil.rmtree(s1.run)  # one seed's folder lost: both seeds are trained again, to the same result
    again = execute.search_stacked_once(p, "sd-darts", 1, "search@sd-darts-1")
    assert again["genotype"] == second["genotype"] and again["supernet_valid_acc"] == second["supernet_valid_acc"]
    assert (s0.run / "checkpoint.pt").stat().st_mtime_ns > made
