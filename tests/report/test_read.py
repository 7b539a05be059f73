"""Malformed report inputs: every input of the wrong shape gives ONE line naming
the file, exit code 2, and the output folder stays as it was, byte for byte (or absent).

Property tests over the fixture metrics: one file at a time is replaced by a malformed version
(a JSON value of the wrong shape, a missing key, a value of the wrong type, binary bytes, JSON
nested 1e5 deep, a truncated file, a folder; curves with bad cells or rows; config files that
are not mappings), and ``sd-darts report`` runs on the result."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import FIXTURES

from sd_darts.cli import main
from sd_darts.experiment.report_spec import report_spec
from sd_darts.experiment.schema import read_params
from sd_darts.report import load_metrics

FIXTURE = FIXTURES / "report"
METRICS = FIXTURE / "metrics"
PARAMS = FIXTURE / "params.yaml"

#: Report inputs and the keys (with their JSON types) the report needs from each.
JSON_FILES = {
    "search/sd-darts-s0/summary.json": {"method": "str"},
    "nb201_search/s1/summary.json": {"method": "str"},
    "train_cifar/selected-s0/metrics.json": {"test_error": "num", "params_m": "num"},
    "ablation_warmup/xi1-s0/eval/metrics.json": {"test_error": "num", "params_m": "num"},
    "search/darts-s1/provenance.json": {"profile": "str"},
    "ablation_window/k2-s0/search/provenance.json": {"profile": "str"},
    "ablation_warmup/xi2-s0/point.json": {"parameter": "str", "value": "num", "seed": "int"},
    "nb201_query/query.json": {"profile": "str", "status": "str"},
    "genotype/selection.json": {"profile": "str", "rule": "str", "selected": "str"},
    "genotype/selected.json": {"space": "str", "normal": "list", "reduce_concat": "list"},
    "genotype/stats.json": {"selected": "dict", "paper": "dict"},
    "train_imagenet/status.json": {"profile": "str", "status": "str"},
}
TSV_FILES = [
    "search/sd-darts-s0/curves.tsv",
    "train_cifar/paper-s1/curves.tsv",
    "ablation_window/k1-s0/search/curves.tsv",
]
YAML_FILES = [
    "search/darts-s0/config.yaml",
    "train_cifar/selected-s1/config.yaml",
    "ablation_warmup/xi0-s0/search/config.yaml",
]

_junk = st.one_of(
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2), st.none()
)
WRONG = {
    "str": st.one_of(_junk, st.integers(), st.floats(allow_nan=False), st.booleans()),
    "num": st.one_of(_junk, st.text(max_size=4), st.booleans(), st.sampled_from([float("nan"), float("inf")])),
    "int": st.one_of(_junk, st.text(max_size=4), st.booleans(), st.floats(0.1, 0.9)),
    "list": st.one_of(
        st.none(), st.integers(), st.text(max_size=4), st.dictionaries(st.text(max_size=2), st.integers())
    ),
    "dict": st.one_of(st.none(), st.integers(), st.text(max_size=4), st.lists(st.integers(), max_size=2)),
}
#: Bytes that are never UTF-8 (0xff cannot occur in UTF-8).
BINARY = st.binary(max_size=40).map(lambda b: b"\xff" + b)
DEEP = st.integers(65, 100_000).map(lambda n: "[" * n + "]" * n)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A copy of the fixture metrics, and a previous report (of no metrics) that must survive."""
    base = tmp_path_factory.mktemp("inputs")
    shutil.copytree(METRICS, base / "metrics")
    (base / "empty").mkdir()
    assert cli(base / "empty", base / "previous")[0] == 0
    return base


def cli(metrics: Path, out: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["report", "--metrics", str(metrics), "--params", str(PARAMS), "--out", str(out)])
    return code, err.getvalue()


def snapshot(path: Path):
    if not path.exists():
        return None
    return {str(p.relative_to(path)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def refused_with(work: Path, rel: str, content: bytes | None, out_name: str) -> None:
    """Replace ``metrics/rel`` by ``content`` (None: a folder), run the report, restore the file;
    the report must fail in one line naming the file and leave ``out_name`` as it was."""
    target = work / "metrics" / rel
    original = target.read_bytes()
    out = work / out_name
    before, siblings = snapshot(out), sorted(p.name for p in work.iterdir())
    try:
        target.unlink()
        if content is None:
            target.mkdir()
        else:
            target.write_bytes(content)
        code, err = cli(work / "metrics", out)
    finally:
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        target.write_bytes(original)
    assert code == 2, err
    assert err.startswith("sd-darts report: error: ") and err.count("\n") == 1, err
    assert rel in err, err
    assert snapshot(out) == before and sorted(p.name for p in work.iterdir()) == siblings


OUTS = st.sampled_from(["previous", "missing"])


@st.composite
def malformed_json(draw):
    rel = draw(st.sampled_from(sorted(JSON_FILES)))
    data = json.loads((METRICS / rel).read_text())
    how = draw(st.sampled_from(["shape", "drop", "type", "deep", "binary", "truncated", "folder"]))
    key = draw(st.sampled_from(sorted(JSON_FILES[rel])))
    if how == "shape":
        content = json.dumps(draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=5))))
    elif how == "drop":
        content = json.dumps({k: v for k, v in data.items() if k != key})
    elif how == "type":
        content = json.dumps({**data, key: draw(WRONG[JSON_FILES[rel][key]])})
    elif how == "deep":
        content = draw(DEEP)
    elif how == "binary":
        return rel, draw(BINARY)
    elif how == "truncated":
        text = json.dumps(data)
        content = text[: draw(st.integers(1, len(text) - 2))]
    else:
        return rel, None
    return rel, content.encode()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(malformed_json(), OUTS)
def test_malformed_json_inputs_are_refused_before_anything_is_written(work, case, out):
    rel, content = case
    refused_with(work, rel, content, out)


@st.composite
def malformed_tsv(draw):
    rel = draw(st.sampled_from(TSV_FILES))
    lines = (METRICS / rel).read_text().splitlines()
    header = lines[0].split("\t")
    i = draw(st.integers(1, len(lines) - 1))
    j = draw(st.integers(0, len(header) - 1))
    row = lines[i].split("\t")
    how = draw(
        st.sampled_from(["text", "inf", "no-epoch", "extra", "short", "empty", "dup", "frac", "binary", "folder"])
    )
    if how == "text":
        row[j] = draw(st.text(alphabet="xyz!#", min_size=1, max_size=5))
    elif how == "inf":
        row[j] = draw(st.sampled_from(["inf", "-inf", "Infinity"]))
    elif how == "no-epoch":
        lines[0] = lines[0].replace("epoch\t", "step\t", 1)
    elif how == "extra":
        row.append("1")
    elif how == "short":
        row.pop()
    elif how == "empty":
        return rel, b""
    elif how == "dup":
        other = lines[1 if i != 1 else 2].split("\t")
        row[header.index("epoch")] = other[header.index("epoch")]
    elif how == "frac":
        row[header.index("epoch")] = "0.5"
    elif how == "binary":
        return rel, draw(BINARY)
    else:
        return rel, None
    lines[i] = "\t".join(row)
    return rel, ("\n".join(lines) + "\n").encode()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(malformed_tsv(), OUTS)
def test_malformed_curves_are_refused_before_anything_is_written(work, case, out):
    rel, content = case
    refused_with(work, rel, content, out)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(YAML_FILES),
    st.one_of(
        BINARY,
        st.just(b"seed: 0\n\0\n"),
        st.sampled_from([b"- a\n- b\n", b"3\n", b"just text\n", b"a: [unclosed\n", b"seed: 99\n", b""]),
        DEEP.map(str.encode),
        st.none(),
    ),
    OUTS,
)
def test_malformed_configs_are_refused_before_anything_is_written(work, rel, content, out):
    refused_with(work, rel, content, out)


def test_the_fixture_itself_is_accepted(work):
    """The properties above would hold vacuously if the unmodified inputs were refused."""
    m = load_metrics(work / "metrics", report_spec(read_params(PARAMS)))
    assert len(m.all_runs()) == 22 and m.selection and m.nb201_query and m.imagenet_status
