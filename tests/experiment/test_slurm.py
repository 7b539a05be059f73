"""``pipeline.runner: slurm``: the pipeline.slurm checks, the missing-sbatch refusal, and (marker
``slurm``, against the one-node cluster of scripts/slurm_check.sh) a plain ``dvc repro`` of one
search stage as a batch job, a job preempted and one stopped before its time limit, both
resumed to the uninterrupted result, a failing job's exit code and log; ``sd-darts pipeline
submit | status | record | cancel`` (arrays in parallel, recording, refusals, the record job,
status without sacct) and the multi-node ImageNet launch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import ROOT

from sd_darts.experiment import slurm as slurm_runner
from sd_darts.experiment.schema import slurm_settings
from sd_darts.experiment.settings import check_all

DVC = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
STAGE = "search@darts-0"
RUN = Path("runs/smoke/search/darts-s0")
METRICS = Path("metrics/smoke/search/darts-s0")


def _cluster_up() -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


needs_cluster = pytest.mark.skipif(not _cluster_up(), reason="no SLURM cluster answers (scripts/slurm_check.sh)")


def _smoke(**pipeline) -> dict:
    raw = yaml.safe_load((ROOT / "params-smoke.yaml").read_text())
    raw["pipeline"].update(pipeline)
    return raw


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# ---------------------------------------------------------------- no cluster needed


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("partition", "gpu a100", "pipeline.slurm.partition: 'gpu a100' is not a SLURM name"),
        (
            "extra_flags",
            ["--time=10"],
            "pipeline.slurm.extra_flags: --time is set by pipeline.slurm.<kind>.time_minutes",
        ),
        ("extra_flags", ["--output=x"], "pipeline.slurm.extra_flags: --output is set by the runner"),
        ("extra_flags", ["--constraint a100"], "write each flag as one item --flag=value"),
        ("command_prefix", "'apptainer", "pipeline.slurm.command_prefix: does not parse as a command line"),
        ("command_prefix", "  ", "pipeline.slurm.command_prefix: must name a command"),
        ("signal_seconds", 0, "pipeline.slurm.signal_seconds: must be at least 1"),
        ("search", {"gpus": -1}, "pipeline.slurm.search.gpus: must be at least 0, got -1"),
        ("train_cifar", {"time": "4:00:00"}, "pipeline.slurm.train_cifar.time is not a known setting"),
        ("ablation", {"mem_gb": "32G"}, "pipeline.slurm.ablation.mem_gb: must be an integer"),
        ("nodes", 2, "pipeline.slurm.nodes is not a known setting"),
    ],
)
def test_check_params_refuses_bad_slurm_settings_in_one_line(tmp_path, capsys, key, value, message):
    from sd_darts.cli import main as cli_main

    raw = _smoke()
    raw["pipeline"]["slurm"][key] = value
    assert cli_main(["check-params", str(_write(tmp_path / "params.yaml", raw))]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


def test_partial_kind_resources_keep_the_other_defaults(tmp_path):
    from sd_darts.experiment.schema import slurm_settings

    raw = _smoke()
    raw["pipeline"]["slurm"]["train_imagenet"] = {"gpus": 4}
    p = check_all(str(_write(tmp_path / "params.yaml", raw)))
    s, res = slurm_settings(p.pipeline.slurm, "x")
    assert (res["train_imagenet"].gpus, res["train_imagenet"].time_minutes, res["train_imagenet"].cpus) == (4, 1440, 24)
    flags = slurm_runner.sbatch_flags(s, res["train_imagenet"], "n", Path("/l-%j.out"), Path("/w"))
    assert "--requeue" in flags and "--signal=B:USR2@120" in flags and "--gres=gpu:4" in flags


def test_missing_sbatch_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from sd_darts.experiment.stages.search import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(slurm_runner.JOB_ENV, raising=False)
    monkeypatch.setenv("SD_DARTS_PARAMS", str(_write(tmp_path / "params.yaml", _smoke(runner="slurm"))))
    assert main(["--method", "darts", "--seed", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "search: error: pipeline.runner is slurm but sbatch is not on PATH; run dvc repro on a SLURM login node "
        "or set pipeline.runner: local (docs/cluster.md)"
    )
    assert not (tmp_path / "runs").exists()


def test_pipeline_submit_of_another_params_file_than_dvcs_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from sd_darts.cli import main as cli_main

    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "params.yaml", _smoke())
    _write(tmp_path / "params-smoke.yaml", _smoke(imagenet_nodes=2))
    assert cli_main(["pipeline", "submit", "--params", "params-smoke.yaml"]) == 2
    assert capsys.readouterr().err.strip() == (
        "sd-darts pipeline: error: pipeline submit --params params-smoke.yaml: DVC's stages read params.yaml, "
        "which differs from it; cp params-smoke.yaml params.yaml (as scripts/profile.sh does), then submit"
    )
    # the same content passes this check (and stops at the next one here: no sbatch)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    _write(tmp_path / "params-smoke.yaml", _smoke())
    assert cli_main(["pipeline", "submit", "--params", "params-smoke.yaml"]) == 2
    assert "needs sbatch" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_pipeline_submit_without_sbatch_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from sd_darts.cli import main as cli_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    _write(tmp_path / "params.yaml", _smoke())
    assert cli_main(["pipeline", "submit", "--wait"]) == 2
    assert capsys.readouterr().err.strip() == (
        "sd-darts pipeline: error: sd-darts pipeline submit needs sbatch, which is not on PATH; "
        "run it on a SLURM login node (docs/cluster.md)"
    )
    assert not (tmp_path / "runs").exists()


def test_a_multi_node_imagenet_job_asks_for_one_task_per_node(tmp_path):
    raw = _smoke(imagenet_nodes=4)
    raw["pipeline"]["slurm"]["train_imagenet"] = {"gpus": 3, "cpus": 24}
    p = check_all(str(_write(tmp_path / "params.yaml", raw)))
    s, res = slurm_settings(p.pipeline.slurm, "x")
    kind = slurm_runner.tasks_of(p, "train_imagenet")
    flags = slurm_runner.sbatch_flags(s, res["train_imagenet"], "train_imagenet", tmp_path / "log", tmp_path, kind)
    assert {"--ntasks=4", "--nodes=4", "--ntasks-per-node=1", "--gres=gpu:3", "--cpus-per-task=24"} <= set(flags)
    assert slurm_runner.tasks_of(p, "train_cifar") == 1
    s.imagenet_tasks_per_node = 2  # two torchrun nodes share each machine: the GPUs per node double
    flags = slurm_runner.sbatch_flags(s, res["train_imagenet"], "train_imagenet", tmp_path / "log", tmp_path, 4)
    assert {"--ntasks=4", "--nodes=2", "--ntasks-per-node=2", "--gres=gpu:6"} <= set(flags)


def test_a_multi_node_run_outside_a_slurm_job_is_one_line(monkeypatch):
    from sd_darts.errors import UserError

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(UserError, match="pipeline.imagenet_nodes is 2: a multi-node run starts inside a SLURM job"):
        slurm_runner.torchrun_per_node(2, 1)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv(slurm_runner.JOB_ENV, "1")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    with pytest.raises(UserError, match="pipeline.imagenet_nodes is 2 but SLURM job 7 has 1 tasks"):
        slurm_runner.torchrun_per_node(2, 1)


def test_light_stages_do_not_submit():
    import argparse

    assert slurm_runner.stage_kind("search", argparse.Namespace(space="nb201")) == "nb201"
    assert slurm_runner.stage_kind("search", argparse.Namespace(space="darts")) == "search"
    assert [slurm_runner.stage_kind(n, None) for n in ("data", "genotype", "report", "curves", "nb201_query")] == [
        None
    ] * 5


# ---------------------------------------------------------------- against a cluster


def _env(ws: Path) -> dict[str, str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ws)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop(slurm_runner.JOB_ENV, None)
    return env


def _set(ws: Path, **pipeline) -> None:
    raw = yaml.safe_load((ws / "params.yaml").read_text())
    for key, value in pipeline.items():
        if key == "slurm":
            raw["pipeline"]["slurm"].update(value)
        else:
            raw["pipeline"][key] = value
    _write(ws / "params.yaml", raw)


def _without_times(tsv: str) -> list[list[str]]:
    rows = [r.split("\t") for r in tsv.splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name != "epoch_seconds"]
    return [[r[i] for i in keep] for r in rows]


def _outputs(ws: Path) -> dict[str, object]:
    """The search stage's collected outputs, byte for byte, except provenance (host, times) and the
    curves' epoch_seconds column."""
    out: dict[str, object] = {p.name: p.read_bytes() for p in (ws / METRICS).iterdir() if p.name != "provenance.json"}
    out["curves.tsv"] = _without_times((ws / METRICS / "curves.tsv").read_text())
    out["genotype (run)"] = (ws / RUN / "genotype.json").read_bytes()
    return out


def _dvc(ws: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([DVC, *args], cwd=ws, env=_env(ws), capture_output=True, text=True, **kw)


def _pipeline(ws: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    """``sd-darts pipeline ARGS`` in the workspace."""
    cmd = [sys.executable, "-m", "sd_darts", "pipeline", *args]
    return subprocess.run(cmd, cwd=ws, env=env or _env(ws), capture_output=True, text=True, timeout=timeout)


def _states(ws: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """``sd-darts pipeline status``: stage -> state of every job of the last submission."""
    res = _pipeline(ws, "status", "--params", "params-smoke.yaml", env=env, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return {line.split("\t")[0]: line.split("\t")[2] for line in res.stdout.splitlines()}


def _states_once(ws: Path, ended, env: dict[str, str] | None = None, seconds: float = 180) -> dict[str, str]:
    """:func:`_states` polled until ``ended(states)`` holds (or ``seconds`` have passed)."""
    deadline = time.monotonic() + seconds
    while not ended(states := _states(ws, env)) and time.monotonic() < deadline:
        time.sleep(1)
    return states


@pytest.fixture(scope="module")
def slurm_ws(tmp_path_factory):
    """A clone of the pipeline (smoke profile, one DARTS search seed, hessian_every 0), with the
    local runner's outputs of search@darts-0 as the reference."""
    if not _cluster_up() or not Path(DVC).exists():
        pytest.skip("needs a SLURM cluster and dvc")
    ws = tmp_path_factory.mktemp("slurm")
    for name in ("dvc.yaml", "sd_darts"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(
            src, ws / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if src.is_dir() else {})
        )
    raw = _smoke(search_methods=["darts"], select_method="darts")
    raw["seeds"]["search"] = [0]
    raw["search"].update(hessian_every=0)
    _write(ws / "params.yaml", raw)
    _dvc(ws, "init", "--no-scm", "-q", check=True)
    res = _dvc(ws, "repro", STAGE)
    assert res.returncode == 0, res.stdout + res.stderr
    reference = _outputs(ws)
    return ws, reference


def _fresh(ws: Path) -> None:
    shutil.rmtree(ws / RUN)
    shutil.rmtree(ws / METRICS)


@pytest.mark.slurm
@needs_cluster
def test_plain_dvc_repro_of_one_stage_as_a_slurm_job_gives_the_local_outputs(slurm_ws):
    ws, reference = slurm_ws
    _fresh(ws)
    _set(ws, runner="slurm")
    res = _dvc(ws, "repro", "-s", "-f", STAGE)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{STAGE}: SLURM job " in res.stdout and " completed; log " in res.stdout
    job_id = res.stdout.split(f"{STAGE}: SLURM job ", 1)[1].split()[0]
    log = ws / "runs/smoke/slurm" / f"{STAGE}-{job_id}.out"
    assert f"sd-darts: SLURM job {job_id} on " in log.read_text() and "sd-darts: stage exit 0" in log.read_text()
    assert _outputs(ws) == reference
    assert slurm_runner.job_state(job_id) == ("COMPLETED", 0)
    status = json.loads(_dvc(ws, "status", "--json", STAGE, check=True).stdout)
    assert STAGE not in status, status


def _job_of(ws: Path, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = subprocess.run(["squeue", "-h", "-o", "%A", "-n", f"sd-darts:{STAGE}"], capture_output=True, text=True)
        if ids.stdout.strip():
            return ids.stdout.split()[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("the stage's job never appeared in squeue")


def _wait_for_checkpoint(ws: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not (ws / RUN / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.1)


@pytest.mark.slurm
@needs_cluster
@pytest.mark.parametrize("how", ["scontrol requeue", "SIGUSR2 before the time limit"])
def test_a_requeued_job_resumes_from_its_checkpoint_to_the_uninterrupted_result(slurm_ws, how):
    """Preemption (``scontrol requeue``: SIGTERM, then SLURM requeues) and the time-limit signal
    (SIGUSR2 to the batch shell: the job requeues itself): the stage stops at its checkpoint, the
    requeued job resumes it, and the outputs equal the local runner's.  The job's command goes
    through pipeline.slurm.command_prefix."""
    ws, reference = slurm_ws
    _fresh(ws)
    prefix = "bash -c 'echo via-prefix; exec \"$@\"' prefix"
    _set(ws, runner="slurm", slurm={"command_prefix": prefix})
    proc = subprocess.Popen(
        [DVC, "repro", "-s", "-f", STAGE],
        cwd=ws,
        env=_env(ws),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        job_id = _job_of(ws, proc)
        _wait_for_checkpoint(ws, proc)
        if how == "scontrol requeue":
            subprocess.run(["scontrol", "requeue", job_id], check=True)
        else:
            subprocess.run(["scancel", "--batch", "--signal=USR2", job_id], check=True)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run(["scancel", job_id], capture_output=True)
    assert proc.returncode == 0, out
    log = (ws / "runs/smoke/slurm" / f"{STAGE}-{job_id}.out").read_text()
    assert "restart 0" in log and "restart 1" in log, log
    assert log.count("via-prefix") == 2, log
    assert "stopped by SIGTERM" in log and "resuming" in log, log
    if how != "scontrol requeue":
        assert "SIGUSR2 (time limit near)" in log and f"requeueing job {job_id}" in log, log
    assert _outputs(ws) == reference


@pytest.mark.slurm
@needs_cluster
def test_a_failing_job_fails_the_stage_with_its_exit_code_and_log(slurm_ws):
    ws, _ = slurm_ws
    bad = yaml.safe_load((ws / "params.yaml").read_text())
    bad["pipeline"]["runner"] = "slurm"
    bad["search"]["learning_rate"] = -1.0  # checked by the search's settings, inside the job
    params = _write(ws / "bad-params.yaml", bad)
    env = {**_env(ws), "SD_DARTS_PARAMS": str(params)}
    res = subprocess.run(
        [sys.executable, "-m", "sd_darts.experiment.stages.search", "--method", "darts", "--seed", "0"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert " ended FAILED (exit 2); last lines of " in res.stderr
    assert "search.learning_rate" in res.stderr, res.stderr


@pytest.mark.slurm
@needs_cluster
def test_a_stage_whose_job_still_runs_is_not_submitted_twice(slurm_ws):
    ws, _ = slurm_ws
    _set(ws, runner="slurm")
    held = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--hold",
            f"--job-name=sd-darts:{STAGE}",
            f"--chdir={ws}",
            "-o",
            "/dev/null",
            "--wrap",
            "true",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    job_id = held.stdout.strip()
    try:
        env = {**_env(ws), "DVC_STAGE": STAGE}
        res = subprocess.run(
            [sys.executable, "-m", "sd_darts.experiment.stages.search", "--method", "darts", "--seed", "0"],
            cwd=ws,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        subprocess.run(["scancel", job_id], check=True)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"search: error: SLURM job {job_id} of {STAGE} is still queued or running in this checkout (its waiting "
        f"stage was stopped); wait for it to end or scancel {job_id}, then rerun"
    )


def _overlap(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.slurm
@needs_cluster
def test_pipeline_submit_runs_the_stale_stages_as_arrays_in_parallel_and_records_them(slurm_ws):
    """Two searches (one job array after the data stage's, afterok) ran at the same time, search@darts-0
    ends as with the local runner, and dvc.lock records both (dvc status clean for them)."""
    ws, reference = slurm_ws
    _fresh(ws)
    raw = yaml.safe_load((ws / "params.yaml").read_text())
    raw["seeds"]["search"] = [0, 1]
    raw["pipeline"]["runner"] = "local"  # submit needs no runner: its jobs run the stage commands
    _write(ws / "params.yaml", raw)
    _write(ws / "params-smoke.yaml", raw)  # the profile's file, copied to params.yaml (DVC's) as profile.sh does
    res = _pipeline(ws, "submit", "--params", "params-smoke.yaml", "--stages", "search@*", "--wait", timeout=400)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pipeline submit: data: job array " in res.stdout and "(2 stages), after data" in res.stdout, res.stdout
    assert "3 stages completed and recorded in dvc.lock, 0 failed, 0 cancelled" in res.stdout, res.stdout
    assert _outputs(ws) == reference
    status = json.loads(_dvc(ws, "status", "--json", "search@darts-0", "search@darts-1", check=True).stdout)
    assert status == {}, status
    manifest = json.loads((ws / "runs/smoke/slurm/submission.json").read_text())
    searches = [j["job"] for j in manifest["jobs"] if j["stage"].startswith("search@")]
    times = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", ",".join(searches), "-o", "JobID,Start,End"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    spans = {row.split("|")[0]: tuple(row.split("|")[1:]) for row in times}
    assert _overlap(spans[searches[0]], spans[searches[1]]), spans
    states = _states(ws)
    assert len(states) == len(manifest["jobs"]) and set(states.values()) == {"COMPLETED"}, states
    assert set(manifest["jobs"][0]["deps"]) == {"cmd", "sd_darts", "params.yaml"}  # data: what no job writes
    assert set(manifest["jobs"][1]["deps"]) == {"cmd", "sd_darts", "params.yaml"}  # search: not data's output


@pytest.mark.slurm
@needs_cluster
def test_recording_refuses_exactly_the_stages_whose_own_dependencies_changed(slurm_ws, monkeypatch):
    """After the submission above: train_cifar's settings are among the data stage's parameters, not
    the searches', so recording again refuses data in one line and keeps both searches recorded."""
    from sd_darts.errors import UserError
    from sd_darts.experiment import submit

    ws, _ = slurm_ws
    good = (ws / "params.yaml").read_text()
    raw = yaml.safe_load(good)
    raw["train_cifar"]["epochs"] += 1
    _write(ws / "params.yaml", raw)
    monkeypatch.chdir(ws)
    manifest = ws / "runs/smoke/slurm/submission.json"
    try:
        with pytest.raises(UserError) as err:
            jobs = json.loads(manifest.read_text())["jobs"]
            submit.record(jobs, submit.states(jobs))
        assert str(err.value) == (
            "not recorded: 1 completed stages whose dependencies changed since the submission, so their outputs "
            "are not what DVC would record: data (params.yaml); run sd-darts pipeline submit again"
        )
        status = json.loads(_dvc(ws, "status", "--json", "search@darts-0", "search@darts-1", check=True).stdout)
        assert status == {}, status  # the searches' own records stand
        assert "data" in json.loads(_dvc(ws, "status", "--json", "data", check=True).stdout)
    finally:
        (ws / "params.yaml").write_text(good)


@pytest.mark.slurm
@needs_cluster
def test_a_submission_nobody_waits_for_is_recorded_by_its_last_job_and_status_needs_no_sacct(slurm_ws, tmp_path):
    """report.title is a parameter of the data stage: submit --stages data (no --wait) runs it and a record job
    after it; once that has ended dvc.lock records data.  With sacct failing, status reads the
    states from scontrol (squeue has forgotten the ended jobs)."""
    ws, _ = slurm_ws
    good = (ws / "params.yaml").read_text()
    raw = yaml.safe_load(good)
    raw["report"]["title"] = "another title"
    _write(ws / "params.yaml", raw)
    try:
        res = _pipeline(ws, "submit", "--stages", "data", timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "pipeline submit: data: job array " in res.stdout and "search" not in res.stdout, res.stdout
        assert "records the completed stages in dvc.lock when the arrays have ended" in res.stdout, res.stdout
        no_sacct = tmp_path / "bin"
        no_sacct.mkdir()
        (no_sacct / "sacct").write_text("#!/bin/sh\necho 'sacct: accounting storage is disabled' >&2\nexit 1\n")
        (no_sacct / "sacct").chmod(0o755)
        env = {**_env(ws), "PATH": f"{no_sacct}{os.pathsep}{_env(ws)['PATH']}"}
        states = _states_once(ws, lambda st: st.get("record") in slurm_runner.FINAL, env)
        assert states == {"data": "COMPLETED", "record": "COMPLETED"}, states
        assert _dvc(ws, "status", "--json", "data", check=True).stdout.strip() == "{}"
    finally:
        (ws / "params.yaml").write_text(good)
        _dvc(ws, "commit", "-f", "data")


@pytest.mark.slurm
@needs_cluster
def test_a_failed_submission_cancels_its_dependents_records_nothing_and_a_rerun_runs_only_what_is_missing(
    slurm_ws,
):
    ws, _ = slurm_ws
    good = (ws / "params.yaml").read_text()
    raw = yaml.safe_load(good)
    raw["search"]["learning_rate"] = -1.0  # the data stage checks every run's settings first: it fails
    _write(ws / "params.yaml", raw)
    res = _pipeline(ws, "submit", "--wait", timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    failed = [line for line in res.stderr.splitlines() if line.startswith("pipeline submit: ")]
    assert len(failed) == 1 and failed[0].startswith("pipeline submit: data FAILED (job "), res.stderr
    assert "0 stages completed and recorded in dvc.lock, 1 failed, " in res.stdout, res.stdout
    states = _states(ws)
    assert states.pop("data") == "FAILED" and set(states.values()) == {"CANCELLED"} and "report" in states, states
    assert "data" in json.loads(_dvc(ws, "status", "--json", check=True).stdout)  # nothing recorded

    (ws / "params.yaml").write_text(good)
    res = _pipeline(ws, "submit", "--stages", "search@*", "--wait", timeout=300)
    assert res.returncode == 0 and "nothing to run" in res.stdout, res.stdout + res.stderr


@pytest.mark.slurm
@needs_cluster
def test_pipeline_cancel_cancels_the_jobs_of_the_last_submission(slurm_ws):
    ws, _ = slurm_ws
    good = (ws / "params.yaml").read_text()
    raw = yaml.safe_load(good)
    raw["search"]["epochs"] = 5
    _write(ws / "params.yaml", raw)
    try:
        res = _pipeline(ws, "submit", "--stages", "search@darts-0", timeout=120)
        assert res.returncode == 0 and "pipeline submit: search: job array " in res.stdout, res.stdout + res.stderr
        res = _pipeline(ws, "cancel", timeout=60)
        assert res.returncode == 0 and res.stdout.startswith("pipeline cancel: scancel "), res.stdout + res.stderr
        states = _states_once(ws, lambda st: st.get(STAGE) == "CANCELLED", seconds=60)
        # the data stage checks every section, so it is stale too: its job ran first or was cancelled
        assert set(states) == {"data", STAGE, "record"} and states[STAGE] == "CANCELLED", states
    finally:
        (ws / "params.yaml").write_text(good)


@pytest.mark.slurm
@needs_cluster
def test_multi_node_imagenet_runs_one_torchrun_per_task_through_srun(tmp_path):
    """pipeline.imagenet_nodes 2: the train_imagenet stage's job has two tasks, srun starts a
    torchrun "node" on each (gloo over loopback), and the two train one data-parallel run."""
    from data_fixtures import make_imagenet

    from sd_darts.genotypes import SD_DARTS, save_genotype

    raw = _smoke(runner="slurm", train_imagenet=True, imagenet_nodes=2, eval_genotypes=["paper"])
    raw["pipeline"]["slurm"].update(
        imagenet_tasks_per_node=2, train_imagenet={"time_minutes": 10, "gpus": 0, "cpus": 1, "mem_gb": None}
    )
    raw["seeds"]["train_imagenet"] = [0]
    raw["data"]["imagenet_root"] = str(make_imagenet(tmp_path / "imagenet", per_class_train=4, per_class_val=2))
    raw["train_imagenet"].update(
        epochs=1,
        batch_size=4,
        init_channels=4,
        layers=3,
        image_size=32,
        max_steps_per_epoch=2,
        device="cpu",
        auxiliary_weight=0.0,
    )
    _write(tmp_path / "params.yaml", raw)
    save_genotype(tmp_path / "metrics/smoke/genotype/paper.json", SD_DARTS)
    env = {**_env(tmp_path), "PYTHONPATH": str(ROOT), "GLOO_SOCKET_IFNAME": "lo"}
    res = subprocess.run(
        [sys.executable, "-m", "sd_darts.experiment.stages.train_imagenet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    script = (tmp_path / "runs/smoke/slurm/train_imagenet.sbatch").read_text()
    assert "#SBATCH --ntasks=2" in script and "#SBATCH --ntasks-per-node=2" in script, script
    metrics = json.loads((tmp_path / "metrics/smoke/train_imagenet/paper-s0/metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["recipe"] == "train-imagenet"
    prov = json.loads((tmp_path / "metrics/smoke/train_imagenet/paper-s0/provenance.json").read_text())
    assert prov["command"].startswith(
        "srun --ntasks=2 torchrun --nnodes 2 --nproc_per_node 1 -m sd_darts train-imagenet "
    )
