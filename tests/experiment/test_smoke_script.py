"""scripts/smoke.sh: --update refuses a dirty tree before any work; the stage progress of dvc repro."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support import ROOT

SCRIPTS = ROOT / "scripts"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True
    )


def test_update_refuses_a_dirty_tree_before_any_work(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("smoke.sh", "profile.sh"):
        shutil.copy(SCRIPTS / name, repo / "scripts" / name)
    shutil.copy(SCRIPTS.parent / "params-smoke.yaml", repo / "params-smoke.yaml")
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    (repo / "code.py").write_text("x = 2\n")
    work = tmp_path / "work"
    run = subprocess.run(
        ["bash", "scripts/smoke.sh", "--update", "--workdir", str(work)],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SD_DARTS_SKIP_SETUP": "1"},
        timeout=60,
    )
    assert run.returncode == 2
    assert "--update refused: the working tree has 1 uncommitted change(s) (e.g. code.py)" in run.stderr
    assert not (work / "repo").exists()  # nothing cloned, nothing run


def test_progress_names_stage_k_of_n_with_elapsed_time():
    dvc_output = (
        "Running stage 'data':\n> python x\nStage 'search@0' didn't change, skipping\nRunning stage 'report':\n"
    )
    run = subprocess.run(
        ["bash", str(SCRIPTS / "repro_progress.sh"), "3"], input=dvc_output, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0 and run.stdout == dvc_output
    lines = [line for line in run.stderr.splitlines() if "stage " in line and " of 3: " in line]
    assert [line.split(": ")[0] for line in lines] == [f"[progress] stage {k} of 3" for k in (1, 2, 3)]
    assert all("elapsed" in line for line in lines) and "3 of 3 stages done in" in run.stderr
