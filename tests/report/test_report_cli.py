"""``sd-darts report`` end to end: it never overwrites or deletes a file it did not write, reruns
over its own output, refuses an edited report, and never shows a run of another profile as
this profile's."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import FIXTURES, ROOT

from sd_darts.cli import main
from sd_darts.report import MANIFEST, output

FIXTURE = FIXTURES / "report"
METRICS = FIXTURE / "metrics"
PARAMS = FIXTURE / "params.yaml"
NEVER_RUN = 99  # a seed of no run folder in the fixture


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["report", *map(str, argv)])
    return code, out.getvalue(), err.getvalue()


def snapshot(path: Path):
    """Names, bytes and modification times of everything under ``path`` (None: does not exist)."""
    if not path.exists():
        return None
    return {
        str(p.relative_to(path)): (p.read_bytes() if p.is_file() else "<dir>", p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
    }


def nb201_only(tmp_path: Path, seeds: list[int]) -> tuple[Path, Path]:
    """A metrics root with only the fixture's NAS-Bench-201 searches, and the fixture's params
    expecting NAS-Bench-201 searches of ``seeds`` (none: of a seed never run) and one run of a
    seed never run in every other matrix (a report that renders in a fraction of a second)."""
    metrics = tmp_path / "metrics"
    if not metrics.exists():
        shutil.copytree(METRICS / "nb201_search", metrics / "nb201_search")
    params = tmp_path / f"params-{'-'.join(map(str, seeds)) or 'none'}.yaml"
    data = yaml.safe_load(PARAMS.read_text())
    data["seeds"] = {**{k: [NEVER_RUN] for k in data["seeds"]}, "nb201": seeds or [NEVER_RUN]}
    data["pipeline"].update(search_methods=["sd-darts"], eval_genotypes=["selected"])
    data["ablation"].update(warmup_epochs_values=[0], window_values=[1])
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    return metrics, params


# ---------------------------------------------------------------- never touch foreign files


def test_cli_refuses_a_folder_of_foreign_files_and_touches_nothing(tmp_path):
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "README.md").write_text("# my project\n")
    (project / "docs" / "guide.md").write_text("guide\n")
    (project / "docs" / "table2_cifar10.csv").write_text("mine\n")  # even a file of a report name
    before = snapshot(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "sd_darts", "report", "--metrics", METRICS, "--params", PARAMS, "--out", project],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "not empty" in res.stderr and MANIFEST in res.stderr
    code, _, err = cli("--metrics", METRICS, "--params", PARAMS, "--out", project / "docs")
    assert code == 2 and "not empty" in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("out", [".", "docs"])
def test_out_dot_and_docs_in_this_repository_are_refused(out):
    watched = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in watched}
    top = sorted(p.name for p in ROOT.parent.iterdir())
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code, _, err = cli("--metrics", METRICS, "--params", PARAMS, "--out", out)
    finally:
        os.chdir(cwd)
    assert code == 2 and "not empty" in err and err.count("\n") == 1
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in watched} == before
    assert not (ROOT / MANIFEST).exists() and not (ROOT / "docs" / MANIFEST).exists()
    assert sorted(p.name for p in ROOT.parent.iterdir()) == top  # no staging folder left beside it


def test_rerun_replaces_its_own_files_and_removes_only_its_own_stale_ones(tmp_path):
    metrics, params2 = nb201_only(tmp_path, [0, 1])
    out = tmp_path / "out"
    code, stdout, _ = cli("--metrics", metrics, "--params", params2, "--out", out)
    assert code == 0 and "21 files" in stdout
    manifest = json.loads((out / MANIFEST).read_text())
    assert "search_curves_nb201.png" in manifest["files"] and "pending" not in manifest
    assert all(output.sha256((out / n).read_bytes()) == h for n, h in manifest["files"].items())
    assert (out / "README.md").stat().st_mode & 0o777 == 0o666 & ~_umask()
    (out / "notes.txt").write_text("kept")  # foreign, of no report name
    (out / "fig9_old.png").write_bytes(b"x")  # foreign, of a report-like name: not the report's to delete
    # Same inputs again: same bytes.
    again = snapshot(out)
    assert cli("--metrics", metrics, "--params", params2, "--out", out)[0] == 0
    assert {k: v[0] for k, v in snapshot(out).items()} == {k: v[0] for k, v in again.items()}
    # Without the NB201 searches the NB201 curves are stale: removed, because the report wrote them.
    _, params0 = nb201_only(tmp_path, [])
    code, stdout, _ = cli("--metrics", metrics, "--params", params0, "--out", out)
    assert code == 0 and "20 files" in stdout
    assert not (out / "search_curves_nb201.png").exists()
    assert (out / "notes.txt").read_text() == "kept" and (out / "fig9_old.png").read_bytes() == b"x"
    assert "search_curves_nb201.png" not in json.loads((out / MANIFEST).read_text())["files"]
    assert "`nb201_search/s0`" in (out / "README.md").read_text()  # now "not reported"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_an_edited_or_foreign_report_file_is_refused(tmp_path):
    metrics, params = nb201_only(tmp_path, [])
    out = tmp_path / "out"
    assert cli("--metrics", metrics, "--params", params, "--out", out)[0] == 0
    (out / "table2_cifar10.md").write_text("my notes on table 2\n")
    before = snapshot(tmp_path)
    code, _, err = cli("--metrics", metrics, "--params", params, "--out", out)
    assert code == 2 and "table2_cifar10.md" in err and "changed since the report wrote it" in err
    assert snapshot(tmp_path) == before
    # a file of a report name that the manifest does not list
    (out / "table2_cifar10.md").unlink()
    shutil.rmtree(out)
    assert cli("--metrics", metrics, "--params", params, "--out", out)[0] == 0
    (out / "search_curves_nb201.png").write_bytes(b"somebody's figure")
    _, params2 = nb201_only(tmp_path, [0, 1])
    before = snapshot(tmp_path)
    code, _, err = cli("--metrics", metrics, "--params", params2, "--out", out)
    assert code == 2 and "search_curves_nb201.png" in err and "did not write" in err
    assert snapshot(tmp_path) == before
    # a damaged manifest
    (out / MANIFEST).write_text('{"files": {"../../etc/passwd": "00"}}')
    code, _, err = cli("--metrics", metrics, "--params", params, "--out", out)
    assert code == 2 and "malformed" in err


def test_a_crash_while_writing_leaves_a_report_the_next_run_completes(tmp_path, monkeypatch):
    metrics, params = nb201_only(tmp_path, [0, 1])
    out = tmp_path / "out"
    assert cli("--metrics", metrics, "--params", params, "--out", out)[0] == 0
    old = snapshot(out)
    _, params1 = nb201_only(tmp_path, [1])  # another report: every table changes

    # A full disk while staging: the old report is untouched, no staging folder is left.
    real_write = Path.write_bytes

    def full_disk(self, data):
        if ".staging-" in str(self.parent) and self.name == "table3_imagenet.md":
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    code, _, err = cli("--metrics", metrics, "--params", params1, "--out", out)
    assert code == 2 and "No space left" in err
    monkeypatch.setattr(Path, "write_bytes", real_write)
    assert snapshot(out) == old and [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []

    # A crash half-way through moving the files in: a mix of old and new files, which the
    # manifest accepts, so the next run completes the report.
    real_move = output._move
    moved = []

    def crash(src, dst):
        if len(moved) == 5:
            raise KeyboardInterrupt  # as a kill would, outside the error handling
        moved.append(dst.name)
        real_move(src, dst)

    monkeypatch.setattr(output, "_move", crash)
    with pytest.raises(KeyboardInterrupt):
        from sd_darts.experiment.report_spec import report_spec
        from sd_darts.experiment.schema import read_params
        from sd_darts.report import build_report

        build_report(metrics, out, report_spec(read_params(params1)))
    monkeypatch.setattr(output, "_move", real_move)
    assert "pending" in json.loads((out / MANIFEST).read_text())
    killed = tmp_path / ".out.staging-killed"  # as a kill -9 while staging would leave it
    killed.mkdir()
    (killed / "README.md").write_text("half")
    other = tmp_path / ".out.staging-other"  # not only report files: not the report's to remove
    (other / "sub").mkdir(parents=True)
    assert cli("--metrics", metrics, "--params", params1, "--out", out)[0] == 0
    assert not killed.exists() and (other / "sub").is_dir()
    fresh = tmp_path / "fresh"
    assert cli("--metrics", metrics, "--params", params1, "--out", fresh)[0] == 0
    assert {k: v[0] for k, v in snapshot(out).items()} == {k: v[0] for k, v in snapshot(fresh).items()}


# ---------------------------------------------------------------- profiles


def _set_profile(run: Path, profile: str | None) -> None:
    prov = json.loads((run / "provenance.json").read_text())
    if profile is None:
        del prov["profile"]
    else:
        prov["profile"] = profile
    (run / "provenance.json").write_text(json.dumps(prov))


def test_runs_of_another_profile_are_never_shown_as_this_profiles(tmp_path):
    metrics = tmp_path / "metrics"
    shutil.copytree(METRICS, metrics)
    _set_profile(metrics / "train_cifar" / "selected-s1", "paper")
    _set_profile(metrics / "ablation_window" / "k2-s0" / "eval", "paper")
    out = tmp_path / "out"
    code, _, err = cli("--metrics", metrics, "--params", PARAMS, "--out", out)
    assert code == 0, err
    readme = (out / "README.md").read_text()
    assert "Not reported (profile `paper`" in readme
    assert "`ablation_window/k2-s0`, `train_cifar/selected-s1`" in readme
    prov = (out / "provenance.md").read_text()
    assert "train_cifar/selected-s1" not in prov and "ablation_window/k2-s0" not in prov
    t2 = (out / "table2_cifar10.md").read_text()
    row = next(r for r in t2.splitlines() if "SD-DARTS (searched by this pipeline)" in r)
    err0 = json.loads((metrics / "train_cifar" / "selected-s0" / "metrics.json").read_text())["test_error"]
    assert f"| {err0:.2f} " in row and "selected-s0 (seeds 0;" in row  # one seed left, no ±
    assert "smoke profile: not comparable to the paper" in row
    assert "2 point(s)" in readme  # Fig. 6 without the point of the other profile


def test_paper_params_over_smoke_metrics_report_nothing_as_the_papers(tmp_path):
    """Issue 8 item 2: a fresh clone's `dvc repro report` with the paper profile over the
    committed smoke metrics must not put the smoke numbers in Table 2 as "reproduced"."""
    params = tmp_path / "paper.yaml"
    params.write_text(PARAMS.read_text().replace("profile: smoke", "profile: paper"))
    out = tmp_path / "out"
    code, _, err = cli("--metrics", METRICS, "--params", params, "--out", out)
    assert code == 0, err
    readme = (out / "README.md").read_text()
    assert "Profile: **paper**" in readme and "Not reported (profile `smoke`" in readme
    for name in ("`genotype`", "`nb201_query/query.json`", "`train_imagenet/status.json`", "`search/sd-darts-s0`"):
        assert name in readme
    t2 = (out / "table2_cifar10.md").read_text().splitlines()
    assert not [r for r in t2 if "reproduced: train_cifar" in r]
    assert "| SD-DARTS (this pipeline) " in t2[-1] and "not run" in t2[-1]
    comp = (out / "comparison.md").read_text().splitlines()[2:]
    assert all(r.split("|")[3].strip() == "not run" for r in comp)
    assert (out / "provenance.csv").read_text().count("\n") == 1  # the header only


def test_a_run_without_a_profile_is_refused_before_anything_is_written(tmp_path):
    metrics = tmp_path / "metrics"
    shutil.copytree(METRICS, metrics)
    _set_profile(metrics / "search" / "darts-s1", None)
    code, _, err = cli("--metrics", metrics, "--params", PARAMS, "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1
    assert "darts-s1/provenance.json" in err and "'profile'" in err and "regenerate" in err
    assert not (tmp_path / "out").exists()
    (metrics / "search" / "darts-s1" / "provenance.json").unlink()
    code, _, err = cli("--metrics", metrics, "--params", PARAMS, "--out", tmp_path / "out")
    assert code == 2 and "has no provenance.json" in err and not (tmp_path / "out").exists()
