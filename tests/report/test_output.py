"""The report's output folder: names are literal (no glob), another report's staging folder is
never removed, and an empty ``--out``/``--metrics`` is refused."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import FIXTURES

from sd_darts.cli import main
from sd_darts.report import MANIFEST, output
from sd_darts.utils import files

FIXTURE = FIXTURES / "report"
CONTENTS = {"README.md": b"# report\n", "table2_cifar10.md": b"| a |\n"}

# a folder name of literal characters and glob metacharacters, and a name the glob would match
_TOKENS = st.sampled_from(["r", "e", "p", "*", "?", "[ep]"])


def _matching(token: str, draw) -> str:
    if token == "*":
        return draw(st.text("xyz", max_size=3))
    if token == "?":
        return draw(st.sampled_from("xyz"))
    if token == "[ep]":
        return draw(st.sampled_from("ep"))
    return token


@st.composite
def glob_names(draw) -> tuple[str, str]:
    tokens = draw(st.lists(_TOKENS, min_size=1, max_size=5).filter(lambda t: any(x in ("*", "?", "[ep]") for x in t)))
    return "".join(tokens), "".join(_matching(t, draw) for t in tokens)


@settings(max_examples=40, deadline=None)
@given(glob_names())
def test_out_names_with_glob_characters_are_literal(tmp_path_factory, names):
    name, other = names
    parent = tmp_path_factory.mktemp("g")
    foreign = parent / f".{other}.staging-abc12345"  # the staging folder of a report into g/<other>
    foreign.mkdir()
    (foreign / "README.md").write_bytes(b"half of another report")
    written = output.write_output(parent / name, CONTENTS, output.check_output(parent / name, sorted(CONTENTS)))
    assert [p.name for p in written] == sorted(CONTENTS)
    assert (foreign / "README.md").read_bytes() == b"half of another report"
    assert (parent / name / MANIFEST).is_file()


def test_a_running_reports_staging_folder_is_left_alone(tmp_path):
    out = tmp_path / "out"
    live = tmp_path / ".out.staging-live1234"  # same output, another report still writing
    live.mkdir()
    (live / "README.md").write_bytes(b"being written")
    with files.RunLock(live):
        output.write_output(out, CONTENTS, None)
        assert (live / "README.md").read_bytes() == b"being written"
    killed = tmp_path / ".out.staging-killed12"  # no lock held: a killed report's, removed
    killed.mkdir()
    (killed / "README.md").write_bytes(b"half")
    output.write_output(out, CONTENTS, output.check_output(out, sorted(CONTENTS)))
    assert not killed.exists() and not live.exists()


def test_cli_out_with_glob_characters_keeps_a_concurrent_reports_staging(tmp_path):
    foreign = tmp_path / ".repXYZ.staging-abc"
    foreign.mkdir()
    (foreign / "README.md").write_text("another report's")
    code, _, err = _cli("--out", tmp_path / "rep*")
    assert code == 0, err
    assert (foreign / "README.md").read_text() == "another report's"
    assert (tmp_path / "rep*" / "README.md").is_file()


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = ["report", "--params", str(FIXTURE / "params.yaml"), "--metrics", str(FIXTURE / "metrics")]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, *map(str, argv)])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("flag", ["--out", "--metrics"])
@pytest.mark.parametrize("value", ["", " "])
def test_cli_empty_out_or_metrics_is_refused(flag, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(*(["--out", "rep"] if flag == "--metrics" else []), flag, value)
    assert code == 2 and err.count("\n") == 1 and f"{flag} is empty" in err, err
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=25, deadline=None)
@given(st.from_regex(output._NAME, fullmatch=True).filter(lambda n: n not in CONTENTS and n != MANIFEST))
def test_an_edited_manifest_never_gets_a_foreign_file_deleted(tmp_path_factory, name):
    out = tmp_path_factory.mktemp("rep") / "out"
    output.write_output(out, {**CONTENTS, "fig9.png": b"png"}, None)
    (out / name).write_bytes(b"my thesis")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"][name] = output.sha256(b"my thesis")  # listed, with its hash, by hand
    (out / MANIFEST).write_text(json.dumps(manifest))
    known = [*CONTENTS, "fig9.png"]
    written = output.write_output(out, CONTENTS, output.check_output(out, sorted(CONTENTS), known=known))
    assert (out / name).read_bytes() == b"my thesis"
    assert not (out / "fig9.png").exists()  # the report's own stale file is removed
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == set(CONTENTS) == {p.name for p in written}


def test_cli_an_edited_manifest_never_gets_a_foreign_file_deleted(tmp_path, caplog):
    out = tmp_path / "out"
    assert _cli("--out", out)[0] == 0
    (out / "notes.txt").write_text("mine")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"]["notes.txt"] = output.sha256(b"mine")
    (out / MANIFEST).write_text(json.dumps(manifest))
    code, _, err = _cli("--out", out)
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine"
    assert "lists notes.txt, which the report never writes" in caplog.text
    assert "notes.txt" not in json.loads((out / MANIFEST).read_text())["files"]
