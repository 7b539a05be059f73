"""``sd-darts pipeline run --jobs N``: the stale stages on this machine, N at a time, recorded in
dvc.lock; a failed stage's dependents never start; ``--single-item`` is ``dvc repro -s``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import ROOT

from sd_darts.experiment.local import slot_env

DVC = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
SEARCHES = ("search@darts-0", "search@darts-1")


def test_each_slot_gets_its_share_of_threads_and_gpus():
    assert slot_env(0, 2, {"OMP_NUM_THREADS": "2"})["OMP_NUM_THREADS"] == "1"
    assert slot_env(1, 4, {"OMP_NUM_THREADS": "2"})["OMP_NUM_THREADS"] == "1"  # never 0
    assert slot_env(0, 2, {"OMP_NUM_THREADS": "16"})["OMP_NUM_THREADS"] == "8"
    gpus = {"OMP_NUM_THREADS": "8", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert [slot_env(s, 2, gpus)["CUDA_VISIBLE_DEVICES"] for s in (0, 1)] == ["0,2", "1,3"]
    assert slot_env(1, 8, gpus)["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"  # fewer GPUs than slots: they share them
    assert "CUDA_VISIBLE_DEVICES" not in slot_env(0, 2, {"OMP_NUM_THREADS": "2"})


def _env(ws: Path, threads: int) -> dict[str, str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ws)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def _pipeline(ws: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sd_darts", "pipeline", "run", *args]
    return subprocess.run(cmd, cwd=ws, env=_env(ws, 2), capture_output=True, text=True, timeout=300)


def _dvc_status(ws: Path, *stages: str) -> dict:
    res = subprocess.run([DVC, "status", "--json", *stages], cwd=ws, env=_env(ws, 1), capture_output=True, text=True)
    return json.loads(res.stdout)


def _results(ws: Path, run: str) -> dict[str, bytes]:
    """A search's collected results except provenance (host, times) and the per-epoch times."""
    folder = ws / "metrics/smoke/search" / run
    out = {p.name: p.read_bytes() for p in folder.iterdir() if p.name not in ("provenance.json", "curves.tsv")}
    rows = [r.split("\t") for r in (folder / "curves.tsv").read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name != "epoch_seconds"]
    out["curves.tsv"] = "\n".join("\t".join(r[i] for i in keep) for r in rows).encode()
    return out


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """The pipeline in a fresh folder: smoke profile, two tiny DARTS searches."""
    if not Path(DVC).exists():
        pytest.skip("needs dvc (pip install 'sd-darts[pipeline]')")
    ws = tmp_path_factory.mktemp("local")
    shutil.copy(ROOT / "dvc.yaml", ws / "dvc.yaml")
    shutil.copytree(ROOT / "sd_darts", ws / "sd_darts", ignore=shutil.ignore_patterns("__pycache__"))
    raw = yaml.safe_load((ROOT / "params-smoke.yaml").read_text())
    raw["pipeline"].update(search_methods=["darts"], select_method="darts")
    raw["seeds"]["search"] = [0, 1]
    raw["search"].update(epochs=2, max_steps_per_epoch=2, hessian_every=0)
    (ws / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=ws, env=_env(ws, 1), check=True)
    return ws


def test_stages_run_two_at_a_time_with_a_thread_each_and_are_recorded_as_dvc_repro_records_them(ws):
    res = _pipeline(ws, "--jobs", "2", "--stages", "search")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pipeline run: 3 stages, at most 2 at a time" in res.stdout
    assert res.stdout.count("started (1 threads)") == 3, res.stdout
    assert "3 stages completed and recorded in dvc.lock, 0 failed, 0 cancelled" in res.stdout, res.stdout
    assert _dvc_status(ws, "data", *SEARCHES) == {}
    manifest = json.loads((ws / "runs/smoke/local/run.json").read_text())
    span = {s["stage"]: (s["start"], s["start"] + s["seconds"]) for s in manifest["stages"]}
    assert span["data"][1] <= min(span[s][0] for s in SEARCHES)  # after the stage they depend on
    (a0, a1), (b0, b1) = (span[s] for s in SEARCHES)
    assert a0 < b1 and b0 < a1  # the two searches ran at the same time
    assert {s["state"] for s in manifest["stages"]} == {"COMPLETED"}
    assert "nothing to run" in _pipeline(ws, "--stages", "search").stdout

    # what dvc repro makes of search@darts-0 (same threads): the same results, and the same record
    ran = _results(ws, "darts-s0")
    lock = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["search@darts-0"]
    shutil.rmtree(ws / "runs/smoke/search/darts-s0")
    res = subprocess.run([DVC, "repro", "-s", "-f", "search@darts-0"], cwd=ws, env=_env(ws, 1), capture_output=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _results(ws, "darts-s0") == ran
    again = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["search@darts-0"]
    assert again["deps"] == lock["deps"] and again["params"] == lock["params"]


def test_single_item_runs_only_the_named_stages_as_dvc_repro_s(ws):
    from sd_darts.experiment.submit import plan

    cwd = Path.cwd()
    os.chdir(ws)
    try:
        only = plan(["genotype"], ["python"], single_item=True)
        upstream = plan(["genotype"], ["python"])
    finally:
        os.chdir(cwd)
    assert [(a.family, a.stages) for a in only] == [("genotype", ["genotype"])]
    assert [a.family for a in upstream] == ["select_retrain", "genotype"]  # data and the searches are recorded


def test_a_failed_stage_cancels_its_dependents_and_nothing_is_recorded(ws):
    good = (ws / "params.yaml").read_text()
    raw = yaml.safe_load(good)
    raw["search"]["learning_rate"] = -1.0  # the data stage checks every run's settings first: it fails
    (ws / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        res = _pipeline(ws, "--stages", "search")
        assert res.returncode == 1, res.stdout + res.stderr
        assert "pipeline run: data FAILED (job #0); log runs/smoke/local/data.log" in res.stderr, res.stderr
        assert "search.learning_rate" in (ws / "runs/smoke/local/data.log").read_text()
        for s in SEARCHES:
            assert f"pipeline run: {s} not started: a stage it depends on did not complete" in res.stdout
        assert "0 stages completed and recorded in dvc.lock, 1 failed, 2 cancelled" in res.stdout, res.stdout
        assert "data" in _dvc_status(ws, "data")
    finally:
        (ws / "params.yaml").write_text(good)


def test_bad_jobs_and_a_params_file_dvc_does_not_read_are_one_line_and_exit_2(ws, tmp_path):
    res = _pipeline(ws, "--jobs", "0")
    assert res.returncode == 2 and res.stderr.strip() == (
        "sd-darts pipeline: error: pipeline run --jobs 0: must be at least 1"
    ), res.stderr
    other = yaml.safe_load((ws / "params.yaml").read_text())
    other["report"]["title"] = "another"
    (ws / "params-other.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    res = _pipeline(ws, "--params", "params-other.yaml")
    assert res.returncode == 2 and res.stderr.strip() == (
        "sd-darts pipeline: error: pipeline run --params params-other.yaml: DVC's stages read params.yaml, which "
        "differs from it; cp params-other.yaml params.yaml (as scripts/profile.sh does), then run"
    ), res.stderr
