"""Bad input and interruptions of ``sd-darts search`` (issue 8): one line, exit 2, nothing
written; settings layered before they are checked; one process per run folder; files readable
by the group/others as the umask says; damaged checkpoints refused before anything is touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sd_darts.cli import main

TINY = ["--dataset", "digits", "--image-size", "16", "--init-channels", "4", "--layers", "5", "--batch-size", "8"]
TINY += ["--limit-samples", "16", "--device", "cpu", "--seed", "3", "--epochs", "2", "--warmup-epochs", "1"]
ROOT = Path(__file__).resolve().parents[1]


def snapshot(folder: Path) -> dict[str, bytes] | None:
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def one_step_search(capsys, out: Path) -> tuple[int, str]:
    return run_cli(
        capsys,
        "search",
        *TINY,
        "--out",
        str(out),
        "--epochs",
        "1",
        "--warmup-epochs",
        "0",
        "--max-steps-per-epoch",
        "1",
    )


def assert_one_line_refusal(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize(
    "flag, value, named",
    [
        ("--learning-rate", "inf", "--learning-rate"),
        ("--sd-lambda", "inf", "--sd-lambda"),
        ("--temperature", "nan", "--temperature"),
        ("--momentum", "inf", "--momentum"),
        ("--weight-decay", "-inf", "--weight-decay"),
        ("--arch-beta2", "nan", "--arch-beta2"),
        ("--seed", "-1", "--seed"),
        ("--layers", "2", "--layers"),
        ("--device", "mps", "--device"),
        ("--device", "meta", "--device"),
        ("--device", "xla", "--device"),
        ("--method", "foo", "--method"),
        ("--window", "1000000", "--window"),
        ("--epochs", "100000000", "--epochs"),
        ("--image-size", "100000", "--image-size"),
        ("--out", "", "--out"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, capsys, flag, value, named):
    out = tmp_path / "run"
    argv = ["search", *TINY, "--out", str(out), f"{flag}={value}"] if flag != "--out" else ["search", *TINY, "--out="]
    code, err = run_cli(capsys, *argv)
    assert_one_line_refusal(code, err, named)
    assert not out.exists()


def test_memory_shaped_settings_are_checked_against_the_machine(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "search", *TINY, "--out", str(out), "--batch-size", "60000", "--init-channels", "512")
    assert_one_line_refusal(code, err, "GiB", "--batch-size")
    assert not out.exists()


def test_params_file_then_flags_are_merged_before_validation(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("search: {epochs: 2, dataset: digits}\nnb201: {epochs: 2, dataset: digits}\n")
    small = ["--image-size", "16", "--init-channels", "4", "--limit-samples", "16", "--batch-size", "8"]
    small += ["--max-steps-per-epoch", "1", "--device", "cpu"]
    # the file's epochs: 2 and the flag's --warmup-epochs 1 are checked together (ξ < E holds)
    out = tmp_path / "run"
    code, err = run_cli(
        capsys, "search", "--params", str(params), *small, "--layers", "5", "--warmup-epochs", "1", "--out", str(out)
    )
    assert code == 0, err
    config = (out / "config.yaml").read_text()
    assert "warmup_epochs: 1\n" in config and "epochs: 2\n" in config
    # --space nb201 reads the nb201 section and takes the space's own size (N = 5), never the DARTS 8
    out = tmp_path / "nb"
    code, err = run_cli(
        capsys, "search", "--params", str(params), "--space", "nb201", *small, "--warmup-epochs", "1", "--out", str(out)
    )
    assert code == 0, err
    config = (out / "config.yaml").read_text()
    assert "space: nb201\n" in config and "layers: 5\n" in config


def test_a_bad_value_in_the_params_file_is_named_by_its_key(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("search: {epochs: 2, dataset: digits, learning_rate: .inf}\n")
    code, err = run_cli(capsys, "search", "--params", str(params), "--out", str(tmp_path / "run"))
    assert_one_line_refusal(code, err, f"{params}: search.learning_rate", "finite")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "content", [b"\xff\xfe\x00s\x00e\x00", b"\x00\x01binary", b"[" * 100000, b"a:\n" + b"  " * 200 + b"b: 1\n"]
)
def test_unreadable_params_files_are_one_line(tmp_path, capsys, content):
    params = tmp_path / "p.yaml"
    params.write_bytes(content)
    code, err = run_cli(capsys, "search", "--params", str(params), "--out", str(tmp_path / "run"))
    assert_one_line_refusal(code, err, str(params))
    code, err = run_cli(capsys, "search", "--params", str(tmp_path), "--out", str(tmp_path / "run"))
    assert_one_line_refusal(code, err, "folder")


def test_primitives_without_none(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(
        capsys,
        "search",
        *TINY,
        "--out",
        str(out),
        "--primitives",
        "skip_connect,sep_conv_3x3",
        "--max-steps-per-epoch",
        "1",
    )
    assert code == 0, err
    genotype = json.loads((out / "genotype.json").read_text())
    assert {op for op, _ in genotype["normal"]} <= {"skip_connect", "sep_conv_3x3"}


def test_outputs_honour_the_umask(tmp_path, capsys):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        code, err = one_step_search(capsys, out)
    finally:
        os.umask(old)
    assert code == 0, err
    for name in ("config.yaml", "checkpoint.pt", "genotype.json", "summary.json", "alphas/epoch_000.pt"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    code, err = one_step_search(capsys, out)
    assert code == 0, err
    assert not stale.exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("done") / "run"
    assert main(["search", *TINY, "--out", str(out), "--max-steps-per-epoch", "1"]) == 0
    return out


def damaged_copies(run: Path, tmp_path: Path):
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)

    def variant(name, edit):
        folder = tmp_path / name
        folder.mkdir()
        for f in ("config.yaml",):
            (folder / f).write_bytes((run / f).read_bytes())
        edit(folder / "checkpoint.pt", {k: v for k, v in ckpt.items()})
        return folder

    def save_raw(path, payload):
        torch.save(payload, path)

    def resign(path, payload):
        from sd_darts.utils.checkpoint import checksum

        payload["checksum"] = checksum(payload)
        torch.save(payload, path)

    yield variant("text", lambda p, c: p.write_text("not a checkpoint"))
    yield variant(
        "flipped",
        lambda p, c: save_raw(
            p, {**c, "model": {k: v + 1 if v.is_floating_point() else v for k, v in c["model"].items()}}
        ),
    )
    yield variant("missing", lambda p, c: resign(p, {k: v for k, v in c.items() if k != "w_optimizer"}))
    yield variant("negative", lambda p, c: resign(p, {**c, "epoch": -5}))
    yield variant("mismatch", lambda p, c: resign(p, {**c, "model": {k + "_x": v for k, v in c["model"].items()}}))
    yield variant("rng", lambda p, c: resign(p, {**c, "rng": {"torch": torch.zeros(3)}}))


def test_damaged_checkpoints_are_refused_before_the_folder_is_touched(finished_run, tmp_path, capsys):
    for folder in damaged_copies(finished_run, tmp_path):
        before = snapshot(folder)
        code, err = run_cli(
            capsys, "search", *TINY, "--out", str(folder), "--max-steps-per-epoch", "1", "--epochs", "3"
        )
        assert_one_line_refusal(code, err, "checkpoint")
        assert snapshot(folder) == before, folder.name


def _spawn_search(out: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "sd_darts", "search", *TINY, "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.2)


def test_a_second_process_on_a_busy_run_folder_stops_with_one_line(tmp_path):
    out = tmp_path / "run"
    first = _spawn_search(out, "--epochs", "30", "--warmup-epochs", "1")
    try:
        _wait_for(out / "config.yaml")
        second = _spawn_search(out, "--epochs", "30", "--warmup-epochs", "1")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert "in use by another running process" in err and len(err.strip().splitlines()) == 1, err
    finally:
        first.kill()
        first.wait()
    # The kernel dropped the killed process's lock: the folder can be resumed at once.
    again = _spawn_search(out, "--epochs", "1", "--warmup-epochs", "0")
    _, err = again.communicate(timeout=300)
    assert again.returncode != 2 or "in use" not in err, err


def test_sigterm_says_what_was_saved(tmp_path):
    out = tmp_path / "run"
    proc = _spawn_search(out, "--epochs", "50", "--warmup-epochs", "1")
    try:
        _wait_for(out / "checkpoint.pt")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert "stopped by SIGTERM" in err and "checkpoint.pt holds epoch" in err and "rerun the same command" in err


def test_results_do_not_depend_on_the_number_of_data_workers(tmp_path, capsys):
    outs = []
    for workers in ("0", "2"):
        out = tmp_path / f"w{workers}"
        code, err = run_cli(
            capsys,
            "search",
            *TINY,
            "--out",
            str(out),
            "--epochs",
            "1",
            "--warmup-epochs",
            "0",
            "--num-workers",
            workers,
        )
        assert code == 0, err
        outs.append(out)
    a, b = (torch.load(o / "alphas" / "epoch_000.pt", weights_only=True) for o in outs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (outs[0] / "genotype.json").read_bytes() == (outs[1] / "genotype.json").read_bytes()


def test_a_full_disk_is_one_line_and_leaves_no_partial_files(tmp_path):
    """Writes fail past a file-size limit (EFBIG) the way they fail on a full disk."""
    out = tmp_path / "run"
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (30000, 30000))\n"
        "from sd_darts.cli import main\n"
        f"sys.exit(main({['search', *TINY, '--out', str(out), '--max-steps-per-epoch', '1']!r}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in res.stderr and "free some space" in errors[0], res.stderr
    assert not [p for p in out.rglob("*.tmp")], sorted(out.rglob("*"))
    assert not (out / "checkpoint.pt").exists()
