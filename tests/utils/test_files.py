"""Reading and writing files safely: only regular files are read (bounded), YAML without
aliases or duplicate keys, values echoed in messages bounded, and nothing written through a
symbolic link inside an output folder.  Each refusal is one line, exit code 2, nothing written."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search_cli import TINY_SEARCH, assert_one_line_refusal, one_step_search, run_cli
from support import ROOT

from sd_darts.cli import main
from sd_darts.errors import UserError
from sd_darts.utils import config, files

TINY = ["--dataset", "digits", "--image-size", "16", "--init-channels", "4", "--layers", "5", "--batch-size", "8"]
TINY += ["--limit-samples", "16", "--device", "cpu", "--seed", "3", "--epochs", "1", "--warmup-epochs", "0"]
TINY += ["--max-steps-per-epoch", "1"]
ARCH = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
REPORT = ROOT / "tests" / "fixtures" / "report"
#: One line of refusal: a path or two and a sentence, never a dump of the input.
MAX_MESSAGE = 400


def cli(*argv: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    """``python -m sd_darts ...`` in a subprocess that cannot hang the suite."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sd_darts", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_refused(proc: subprocess.CompletedProcess, *needles: str) -> None:
    err = proc.stderr.strip()
    assert proc.returncode == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and len(err) < MAX_MESSAGE, err[:2000]
    for needle in needles:
        assert needle in err, (needle, err)


def run_in_process(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err.strip()


# ---------------------------------------------------------------------------------------------
# Symbolic links in and around an output folder
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("links", [("genotypes", "alphas"), ("dvclive",), ("dvclive/plots",)])
def test_symlinked_subfolders_of_a_run_folder_are_refused_before_anything_is_written(tmp_path, capsys, links):
    out, elsewhere = tmp_path / "runs" / "x", tmp_path / "elsewhere"
    out.mkdir(parents=True)
    elsewhere.mkdir()
    for name in links:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).symlink_to(elsewhere, target_is_directory=True)
    code, err = run_in_process(capsys, "search", *TINY, "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "symbolic link" in err and sorted(links)[0] in err, err
    assert list(elsewhere.iterdir()) == []
    assert not (out / "config.yaml").exists()


def test_a_dangling_out_link_is_refused_naming_it(tmp_path, capsys):
    out = tmp_path / "x"
    out.symlink_to(tmp_path / "missing")
    code, err = run_in_process(capsys, "search", *TINY, "--out", str(out))
    assert code == 2 and len(err.splitlines()) == 1 and "does not exist" in err and str(out) in err, err
    assert not (tmp_path / "missing").exists()


def test_an_out_link_to_a_real_folder_is_still_an_output_folder(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "x").symlink_to(real, target_is_directory=True)
    assert files.check_writable_dir(tmp_path / "x") == tmp_path / "x"


def test_the_parent_of_an_output_file_is_not_walked(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path)
    files.check_writable_dir(tmp_path, tree=False)
    with pytest.raises(UserError, match="symbolic link link"):
        files.check_writable_dir(tmp_path)


def test_a_report_manifest_linked_to_a_device_is_refused(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / ".sd-darts-report.json").symlink_to("/dev/zero")
    proc = cli(
        "report",
        "--params",
        str(REPORT / "params.yaml"),
        "--metrics",
        str(REPORT / "metrics"),
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert_refused(proc, "symbolic link", ".sd-darts-report.json")
    assert sorted(p.name for p in out.iterdir()) == [".sd-darts-report.json"]


def test_a_report_manifest_that_is_a_fifo_is_refused_without_hanging(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    os.mkfifo(out / ".sd-darts-report.json")
    argv = ["--params", str(REPORT / "params.yaml"), "--metrics", str(REPORT / "metrics"), "--out", str(out)]
    proc = cli("report", *argv, cwd=tmp_path, timeout=60)
    assert_refused(proc, "FIFO", ".sd-darts-report.json")
    assert sorted(p.name for p in out.iterdir()) == [".sd-darts-report.json"]


# ---------------------------------------------------------------------------------------------
# Special files: only regular files are read
# ---------------------------------------------------------------------------------------------


def special_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"character device": Path("/dev/zero"), "FIFO": fifo}


@pytest.mark.parametrize("kind", ["character device", "FIFO"])
@pytest.mark.parametrize(
    "argv",
    [
        ("search", "--params", "{f}", "--out", "out"),
        ("check-params", "{f}"),
        ("stats", "--genotype", "{f}"),
        ("report", "--params", "{f}", "--out", "out"),
        ("train-cifar", "--genotype", "{f}", "--out", "out"),
        ("checksum", "{f}"),
        ("nb201-query", "--benchmark", "{f}", ARCH),
        ("nb201-query", "{f}"),
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_special_files_are_refused_in_one_line_without_reading_them(tmp_path, kind, argv):
    path = special_files(tmp_path)[kind]
    started = time.monotonic()
    proc = cli(*(a.format(f=path) for a in argv), cwd=tmp_path)
    assert_refused(proc, str(path), kind, "not a regular file")
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out").exists()


def test_a_fifo_checkpoint_is_refused_while_the_folder_is_locked_not_waited_on(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    os.mkfifo(out / "checkpoint.pt")
    proc = cli("search", *TINY, "--out", str(out), cwd=tmp_path)
    assert_refused(proc, "checkpoint.pt", "FIFO")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]


def test_reads_stop_at_the_cap(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: 1\n" * 100)
    assert files.read_bytes(path, cap=500) == path.read_bytes()
    with pytest.raises(UserError, match="far too large"):
        files.read_bytes(path, cap=499)


def test_a_dangling_link_in_a_data_folder_is_named(tmp_path, capsys):
    (tmp_path / "train" / "n01").mkdir(parents=True)
    (tmp_path / "train" / "n01" / "a.JPEG").write_bytes(b"x")
    (tmp_path / "train" / "n01" / "b.JPEG").symlink_to(tmp_path / "gone.JPEG")
    code, err = run_in_process(capsys, "checksum", str(tmp_path))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "train/n01/b.JPEG" in err and "does not exist" in err, err


# ---------------------------------------------------------------------------------------------
# YAML: no aliases, no duplicate keys
# ---------------------------------------------------------------------------------------------


def laughs(levels: int, fanout: int, where: str = "search:\n  primitives: ") -> str:
    """A "billion laughs" document: ``fanout ** levels`` strings from a few hundred bytes."""
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * fanout) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fanout) + "]")
    return "\n".join(lines) + f"\n{where}*l{levels}\n"


@pytest.mark.parametrize(
    "argv,where",
    [
        (("search", "--params", "bomb.yaml", "--out", "out"), "search:\n  primitives: "),
        (("check-params", "bomb.yaml"), "report:\n  title: "),
    ],
)
def test_an_alias_bomb_is_refused_at_once(tmp_path, argv, where):
    (tmp_path / "bomb.yaml").write_text(laughs(9, 10, where))
    started = time.monotonic()
    proc = cli(*argv, cwd=tmp_path)
    assert_refused(proc, "bomb.yaml", "alias")
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out").exists()


@settings(max_examples=40, deadline=None)
@given(levels=st.integers(0, 12), fanout=st.integers(1, 12))
def test_any_alias_is_refused_with_a_short_message(tmp_path_factory, levels, fanout):
    path = tmp_path_factory.mktemp("alias") / "p.yaml"
    path.write_text(laughs(levels, fanout))
    with pytest.raises(UserError, match="alias") as exc:
        files.read_yaml(path, "params file")
    assert len(str(exc.value)) < MAX_MESSAGE and "\n" not in str(exc.value)


#: Plain words YAML reads as booleans or null, not as the key's text.
YAML_WORDS = {"yes", "no", "true", "false", "on", "off", "null"}
keys = st.text(st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")), min_size=1, max_size=200).filter(
    lambda k: k not in YAML_WORDS
)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(keys, min_size=1, max_size=8, unique=True), data=st.data())
def test_a_duplicate_key_is_refused_naming_it(tmp_path_factory, names, data):
    dup = data.draw(st.sampled_from(names))
    order = names + [dup]
    order = data.draw(st.permutations(order))
    body = "".join(f"  {k}: {i}\n" for i, k in enumerate(order))
    path = tmp_path_factory.mktemp("dup") / "p.yaml"
    path.write_text(f"search:\n{body}")
    with pytest.raises(UserError, match="twice") as exc:
        files.read_yaml(path, "params file")
    message = str(exc.value)
    assert dup[:30] in message and len(message) < MAX_MESSAGE and "\n" not in message


def test_a_duplicate_section_is_refused_end_to_end(tmp_path):
    (tmp_path / "p.yaml").write_text("search:\n  epochs: 2\nsearch:\n  epochs: 3\n")
    assert_refused(cli("search", "--params", "p.yaml", "--out", "out", cwd=tmp_path), "'search'", "twice")
    assert not (tmp_path / "out").exists()


@settings(max_examples=40, deadline=None)
@given(
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10), lambda c: st.lists(c, max_size=3))
)
def test_written_yaml_reads_back_even_with_shared_objects(tmp_path_factory, shared):
    path = tmp_path_factory.mktemp("w") / "c.yaml"
    obj = {"a": shared, "b": shared, "c": [shared, shared]}
    files.write_yaml(path, obj)
    assert files.read_yaml(path) == obj


# ---------------------------------------------------------------------------------------------
# Values echoed in messages are bounded
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Settings:
    name: str = config.setting("x")
    count: int = config.setting(1, ge=0)


values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda c: st.lists(c, max_size=50) | st.dictionaries(st.text(max_size=500), c, max_size=20),
    max_leaves=400,
)


@settings(max_examples=80, deadline=None)
@given(value=values, big=st.integers(0, 10**5))
def test_bad_values_and_keys_are_echoed_bounded(value, big):
    for mapping in ({"name": [value] * big if big else value}, {"count": [str(value)] * 3}, {"k" * big: value}):
        try:
            config.from_mapping(_Settings, mapping, "p.yaml: search")
        except UserError as exc:
            assert len(str(exc)) < MAX_MESSAGE and "\n" not in str(exc), str(exc)[:500]
    assert len(files.bounded(value)) <= 80


# ---------------------------------------------------------------------------- bad input and interruptions of sd-darts search
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


def test_a_full_disk_is_one_line_and_leaves_no_partial_files(tmp_path):
    """Writes fail past a file-size limit (EFBIG) the way they fail on a full disk."""
    out = tmp_path / "run"
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (30000, 30000))\n"
        "from sd_darts.cli import main\n"
        f"sys.exit(main({['search', *TINY_SEARCH, '--out', str(out), '--max-steps-per-epoch', '1']!r}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in res.stderr and "free some space" in errors[0], res.stderr
    assert not [p for p in out.rglob("*.tmp")], sorted(out.rglob("*"))
    assert not (out / "checkpoint.pt").exists()
