"""sd-darts bench: the contract with the benchmark scripts (JSON on stdout, one object or a list,
required keys, any others) and the report it writes; with stand-in scripts, so that no timing
is measured here (speed is measured by benchmarks/, never by tests)."""

from __future__ import annotations

import json
import re
import textwrap
import types

import pandas as pd
import pytest
from support import ROOT

from sd_darts.cli import main
from sd_darts.tools import bench as benchreport
from sd_darts.tools import container
from sd_darts.tools.bench import Invocation


def _script(root, name, body):
    folder = root / "benchmarks"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(textwrap.dedent(body))


ONE = """
import json, sys
args = sys.argv[1:]
print(json.dumps({"benchmark": "one", "device": args[args.index("--device") + 1], "ms_per_step_median": 2.5,
                  "peak_memory_bytes": 3 * 2**20, "args": " ".join(args)}))
"""
MANY = """
import json
print(json.dumps([
    {"benchmark": "many", "variant": "fast", "device": "cpu", "ms_per_step_median": 1.0, "peak_memory_bytes": 2**20,
     "speedup": 2.0, "ops": 7},
    {"benchmark": "many", "variant": "reference", "device": "cpu", "ms_per_step_median": 2.0, "peak_memory_bytes": 2**21},
]))
"""
ENV = {"cpu": "test cpu", "python": "3.x", "torch": "9.9"}


@pytest.fixture
def root(tmp_path, monkeypatch):
    root = tmp_path / "checkout"
    root.mkdir()
    _script(root, "one.py", ONE)
    _script(root, "many.py", MANY)
    monkeypatch.setattr(
        benchreport,
        "INVOCATIONS",
        (
            Invocation("one.py", ("--size", "big"), ("--size", "tiny")),
            Invocation("many.py"),  # no quick sizes: not run with --quick
        ),
    )
    real_runner = benchreport.local_runner

    def runner(argv, where):  # the environment probe answers without importing torch
        if argv[1:3] == ["-m", "sd_darts.tools.bench"]:
            return 0, json.dumps(ENV)
        return real_runner(argv, where)

    monkeypatch.setattr(benchreport, "local_runner", runner)
    return root


def test_report_one_row_per_measurement_with_environment(root, tmp_path, capsys):
    out = tmp_path / "reports" / "benchmarks.md"
    assert main(["bench", "--checkout", str(root), "--out", str(out), "--device", "cpu"]) == 0
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table["benchmark"]) == ["one", "many", "many"]
    assert list(table["variant"].fillna("")) == ["", "fast", "reference"]
    assert table.loc[0, "args"] == "--size big --device cpu"
    assert table.loc[1, "speedup"] == 2.0 and table.loc[1, "ops"] == 7  # unknown keys become columns
    assert set(table["torch"].astype(str)) == {"9.9"} and set(table["image"]) == {"none (local)"}
    md = out.read_text()
    assert "| one " in md and md.count("| many ") == 2
    assert "speedup=2.0, ops=7" in md  # the settings column
    assert re.search(r"\| one +\| +\| cpu +\| +2\.5 \| +3 \|", md)  # ms/step, then peak memory in MiB
    assert "test cpu" in md and "## Environment" in md


def test_quick_runs_only_what_has_quick_sizes(root, tmp_path):
    out = tmp_path / "b.md"
    assert main(["bench", "--checkout", str(root), "--out", str(out), "--quick", "--device", "cpu"]) == 0
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table["benchmark"]) == ["one"] and table.loc[0, "args"] == "--size big --size tiny --device cpu"


@pytest.mark.parametrize(
    "body, message",
    [
        ('print(\'{"benchmark": "x", "device": "cpu", "ms_per_step_median": 1}\')', "without peak_memory_bytes"),
        ("print('took 3 ms')", "did not print JSON"),
        (
            'print(\'[{"benchmark": "x", "device": "cpu", "ms_per_step_median": "fast", "peak_memory_bytes": 1}]\')',
            "must be a number",
        ),
        ("import sys; sys.exit(3)", "failed with exit code 3"),
    ],
)
def test_bad_script_output_is_one_line_and_nothing_written(root, tmp_path, capsys, body, message):
    _script(root, "one.py", body)
    out = tmp_path / "reports" / "benchmarks.md"
    code = main(["bench", "--checkout", str(root), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and err[-1].startswith("sd-darts bench: error: benchmarks/one.py")
    assert not (tmp_path / "reports").exists()


def test_only_unknown_name_and_missing_folder(root, tmp_path, capsys):
    assert main(["bench", "--checkout", str(root), "--out", str(tmp_path / "b.md"), "--only", "nope"]) == 2
    assert "--only nope matches no benchmark; choose from many, one" in capsys.readouterr().err
    assert main(["bench", "--checkout", str(tmp_path), "--out", str(tmp_path / "b.md")]) == 2
    assert "no benchmarks/ folder" in capsys.readouterr().err


def test_unlisted_scripts_are_named_not_run(root, tmp_path, capsys):
    _script(root, "new_variant.py", "raise SystemExit('must not run')")
    _script(root, "_shared.py", "")
    assert main(["bench", "--checkout", str(root), "--out", str(tmp_path / "b.md"), "--only", "one"]) == 0
    err = capsys.readouterr().err
    assert "benchmarks/new_variant.py is not run" in err and "_shared" not in err


def test_docker_runs_each_script_in_the_image_and_reports_it(root, tmp_path, monkeypatch):
    """--docker: every command goes through sd_darts.tools.container with the checkout mounted; the
    report names the image and its id."""
    image_id = "sha256:" + "cd" * 32
    commands = []

    class Client:
        images = types.SimpleNamespace(get=lambda name: types.SimpleNamespace(id=image_id))

    def run_in_image(argv, *, image, gpus, workdir, checkout, stdout, client):
        commands.append((list(argv), image, gpus, workdir, checkout))
        text = json.dumps(ENV) if "sd_darts.tools.bench" in argv else benchreport.local_runner(argv, root)[1]
        stdout.write(text.encode())
        return 0

    monkeypatch.setattr(container, "connect", lambda: Client())
    monkeypatch.setattr(container, "_sdk", lambda: None)
    monkeypatch.setattr(container, "run_in_image", run_in_image)
    out = tmp_path / "b.md"
    argv = ["bench", "--docker", "--checkout", str(root), "--out", str(out), "--device", "cuda", "--only", "one"]
    assert main(argv) == 0
    assert [c[0][:2] for c in commands] == [["python", "benchmarks/one.py"], ["python", "-m"]]
    assert all(c[1:] == ("sd-darts:latest", "all", root, root) for c in commands)  # cuda -> --gpus all
    table = pd.read_csv(out.with_suffix(".csv"))
    assert table.loc[0, "image_id"] == image_id and table.loc[0, "image"] == "sd-darts:latest"
    assert image_id in out.read_text()


def test_invocations_name_existing_scripts_and_flags():
    """Every invocation of the real table names a script of benchmarks/ and flags it accepts."""
    import subprocess
    import sys

    folder = ROOT / "benchmarks"
    helps = {}
    for inv in benchreport.INVOCATIONS:
        assert (folder / inv.script).is_file(), inv.script
        if inv.script not in helps:
            helps[inv.script] = subprocess.run(
                [sys.executable, str(folder / inv.script), "--help"], capture_output=True, text=True, check=True
            ).stdout
        for flag in [a for a in (*inv.args, *(inv.quick or ()), "--device") if a.startswith("--")]:
            assert flag in helps[inv.script], (inv.script, flag)


def test_default_report_goes_to_the_checkouts_reports(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--checkout", str(root), "--only", "many"]) == 0
    assert (root / "reports" / "benchmarks.md").is_file() and (root / "reports" / "benchmarks.csv").is_file()
    assert not (tmp_path / "reports").exists()
