"""NAS-Bench-201: search space, benchmark queries (paper §4.4, Table 4) and the CLI.

The benchmark tests use a small file in the official format written by
``tests/spaces/nb201_fixture.py`` with the API's own classes; the real API reads it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nb201_fixture import DEFAULT_ARCHS, SEEDS_FULL, UNEVALUATED_ARCH, benchmark_dict, write_benchmark
from support import ROOT as REPO

from sd_darts.cli import main
from sd_darts.errors import UserError
from sd_darts.genotypes import NB201_EDGES, NB201_PRIMITIVES, NB201Genotype, save_genotype
from sd_darts.spaces import get_space
from sd_darts.spaces.nb201 import SPACE
from sd_darts.spaces.nb201 import benchmark as nb201
from sd_darts.spaces.nb201.benchmark_file import allowed_globals
from sd_darts.spaces.nb201.supernet import AvgPool, NB201Supernet

KEYS = [c.key for c in nb201.COLUMNS]
arch_ops = st.tuples(*[st.sampled_from(NB201_PRIMITIVES) for _ in NB201_EDGES])


@pytest.fixture(scope="module")
def api_module():
    """The official NAS-Bench-201 API; tests that need it are skipped without it."""
    return pytest.importorskip("nas_201_api")


@pytest.fixture(scope="module")
def bench_file(tmp_path_factory, api_module):
    path = tmp_path_factory.mktemp("nb201") / "NAS-Bench-201-v1_1-096897.pth"
    expected = write_benchmark(path, legacy_format=True)
    return path, expected


@pytest.fixture(scope="module")
def bench(bench_file):
    return nb201.load_benchmark(bench_file[0])


# --------------------------------------------------------------------------------------------
# Benchmark queries
# --------------------------------------------------------------------------------------------


def test_queries_return_the_written_200_epoch_values_averaged_over_seeds(bench, bench_file):
    _, expected = bench_file
    rows = nb201.query(bench, list(expected))
    assert [r["arch"] for r in rows] == list(expected)
    for row in rows:
        for key in KEYS:
            assert row[key] == pytest.approx(expected[row["arch"]][key], abs=1e-9), key
        assert row["benchmark_seeds"] == {ds: len(s) for ds, s in SEEDS_FULL.items()}
    # The columns differ from one another, so a swapped dataset or split would be caught ...
    assert len({rows[0][k] for k in KEYS}) == len(KEYS)
    # ... and the 12-epoch results (the API's default hp) differ from what we report.
    less = bench.api.get_more_info(0, "cifar10-valid", hp="12", is_random=False)["valid-accuracy"]
    assert abs(less - rows[0]["cifar10_valid"]) > 1.0


def test_zip_format_file_reads_the_same(tmp_path, bench_file, bench):
    path = tmp_path / "zip.pth"
    write_benchmark(path, legacy_format=False)
    rows = nb201.query(nb201.load_benchmark(path), DEFAULT_ARCHS)
    assert rows == nb201.query(bench, DEFAULT_ARCHS)


def test_official_constructor_reads_the_fixture_with_the_same_answers(bench_file, bench, api_module):
    """The fixture is in the official format: the API's own loader reads it (trusted here)."""
    path, _ = bench_file
    with torch.serialization.safe_globals(allowed_globals()):
        official = api_module.NASBench201API(str(path), verbose=False)
    assert len(official) == len(bench.api) == len(DEFAULT_ARCHS) + 1
    for arch in DEFAULT_ARCHS:
        idx = official.query_index_by_arch(arch)
        for dataset in SEEDS_FULL:
            assert official.get_more_info(idx, dataset, hp="200", is_random=False) == bench.api.get_more_info(
                idx, dataset, hp="200", is_random=False
            )


def test_loaded_results_are_referenced_not_copied(bench_file, monkeypatch):
    """One copy of the benchmark in memory: the API objects share the loaded dictionaries."""
    captured = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        data = real_load(*args, **kwargs)
        captured.update({i: info["full"]["all_results"] for i, info in data["arch2infos"].items()})
        return data

    monkeypatch.setattr(torch, "load", spy)
    api = nb201.load_benchmark(bench_file[0]).api
    key = ("cifar100", 888)
    assert api.arch2infos_dict[2]["200"].all_results[key].eval_acc1es is captured[2][key]["eval_acc1es"]


def test_best_architecture_is_the_cifar10_valid_argmax(bench, bench_file):
    _, expected = bench_file
    best = bench.best()
    arch = max(expected, key=lambda a: expected[a]["cifar10_valid"])
    assert best["by"] == "cifar10_valid" and best["arch"] == arch
    assert best["cifar100_test"] == pytest.approx(expected[arch]["cifar100_test"])


def test_unevaluated_and_unknown_architectures_are_user_errors(bench):
    with pytest.raises(UserError, match="listed but has no results"):
        bench.query(NB201Genotype.from_arch_str(UNEVALUATED_ARCH))
    absent = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|"
    with pytest.raises(UserError, match="is not in benchmark file"):
        bench.query(NB201Genotype.from_arch_str(absent))


class _RunsCode:
    """A pickle payload that would create a folder when unpickled without restriction."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("legacy", [True, False])
def test_file_carrying_an_arbitrary_object_is_refused_without_running_it(tmp_path, legacy, api_module):
    marker = tmp_path / "code-ran"
    data = benchmark_dict(DEFAULT_ARCHS[:1])
    data["arch2infos"][0]["full"]["extra"] = _RunsCode(marker)
    path = tmp_path / "tampered.pth"
    torch.save(data, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UserError, match="tampered") as err:
        nb201.load_benchmark(path)
    assert "mkdir" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [True, False])
def test_refusal_names_the_unsafe_globals_from_the_static_scan_not_torchs_message(
    tmp_path, legacy, api_module, monkeypatch
):
    """The objects named come from torch's static scan of the pickle, whatever torch's refusal
    message says (here: nothing), and torch's advice to load with weights_only=False is not passed on."""
    marker = tmp_path / "code-ran"
    data = benchmark_dict(DEFAULT_ARCHS[:1])
    data["arch2infos"][0]["full"]["extra"] = _RunsCode(marker)
    path = tmp_path / "tampered.pth"
    torch.save(data, path, _use_new_zipfile_serialization=not legacy)
    real_load = torch.load

    def load_with_a_terse_refusal(*args, **kwargs):
        try:
            return real_load(*args, **kwargs)
        except pickle.UnpicklingError:
            raise pickle.UnpicklingError("refused") from None

    monkeypatch.setattr(torch, "load", load_with_a_terse_refusal)
    scans = []
    real_scan = torch.serialization.get_unsafe_globals_in_checkpoint
    monkeypatch.setattr(
        torch.serialization, "get_unsafe_globals_in_checkpoint", lambda f: scans.append(f) or real_scan(f)
    )
    with pytest.raises(UserError, match="tampered") as err:
        nb201.load_benchmark(path)
    msg = str(err.value)
    assert f"'{os.mkdir.__module__}.mkdir'" in msg and "\n" not in msg and "weights_only=False" not in msg
    assert len(scans) == 1 and not marker.exists()


def test_refusal_of_a_file_the_scan_cannot_read_names_nothing_and_is_one_line(tmp_path, api_module):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"\x80\x02cposix\nsystem\n" + b"\xff" * 64)  # a GLOBAL, then no valid opcode
    with pytest.raises(UserError, match="not a (readable )?NAS-Bench-201 file") as err:
        nb201.load_benchmark(path)
    assert "\n" not in str(err.value) and "weights_only=False" not in str(err.value)


def test_the_benchmark_pin_hashes_the_whole_file_with_hashlib_file_digest(tmp_path, monkeypatch):
    """``data.nb201_benchmark_sha256`` is checked with :func:`sha256_file`; it and the
    ``--gunzip`` hash read the file through ``hashlib.file_digest``."""
    from sd_darts.data import checksums

    content = np.random.default_rng(0).bytes(3 * 2**18 + 17)  # more than one read buffer
    path, packed = tmp_path / "bench.pth", tmp_path / "bench.pth.gz"
    path.write_bytes(content)
    packed.write_bytes(gzip.compress(content))
    calls = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda f, digest: calls.append(digest) or real(f, digest))
    want = hashlib.sha256(content).hexdigest()
    assert checksums.sha256_file(path) == want and checksums.gunzip_sha256(packed) == want
    assert calls == ["sha256", "sha256"]


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: torch.save({"state_dict": {"w": torch.zeros(2)}}, p), "missing meta_archs"),
        (lambda p: torch.save([1, 2, 3], p), "not a dictionary"),
        (lambda p: p.write_bytes(b"definitely not a pickle"), "not a (readable )?NAS-Bench-201 file"),
        (lambda p: p.write_bytes(b""), "not a readable NAS-Bench-201 file"),
    ],
)
def test_foreign_or_broken_files_are_one_line_errors(tmp_path, make, needle, api_module):
    path = tmp_path / "foreign.pth"
    make(path)
    with pytest.raises(UserError, match=needle) as err:
        nb201.load_benchmark(path)
    assert "\n" not in str(err.value)


def test_truncated_file_is_an_error(tmp_path, bench_file):
    path = tmp_path / "truncated.pth"
    path.write_bytes(bench_file[0].read_bytes()[:100_000])
    with pytest.raises(UserError, match="not a readable NAS-Bench-201 file"):
        nb201.load_benchmark(path)


def test_results_filed_under_the_wrong_arch_are_refused(tmp_path, api_module):
    data = benchmark_dict(DEFAULT_ARCHS[:2])
    data["meta_archs"][0], data["meta_archs"][1] = data["meta_archs"][1], data["meta_archs"][0]
    path = tmp_path / "swapped.pth"
    torch.save(data, path)
    with pytest.raises(UserError, match="is stored as"):
        nb201.load_benchmark(path)


def test_missing_file_names_the_path_and_where_it_comes_from(tmp_path, api_module):
    path = tmp_path / "nowhere" / "NAS-Bench-201-v1_1-096897.pth"
    with pytest.raises(UserError) as err:
        nb201.load_benchmark(path)
    msg = str(err.value)
    assert str(path) in msg and "github.com/D-X-Y/NAS-Bench-201" in msg and "\n" not in msg


def test_missing_api_is_a_one_line_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nas_201_api", None)  # makes "import nas_201_api" fail
    with pytest.raises(UserError, match="pip install") as err:
        nb201.load_benchmark(tmp_path / "b.pth")
    assert "\n" not in str(err.value)


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.tuples(*[st.floats(0, 100) for _ in KEYS]), min_size=1, max_size=6))
def test_table4_row_is_mean_and_population_std_over_seeds(rows):
    results = [{"arch": f"a{i}", **dict(zip(KEYS, r))} for i, r in enumerate(rows)]
    out = nb201.table4_row(results)
    assert out["n"] == len(rows) and out["archs"] == [f"a{i}" for i in range(len(rows))]
    for j, key in enumerate(KEYS):
        col = np.array([r[j] for r in rows])
        assert out[key]["mean"] == pytest.approx(col.mean(), abs=1e-9)
        assert out[key]["std"] == pytest.approx(col.std(), abs=1e-9)
        assert min(col) - 1e-9 <= out[key]["mean"] <= max(col) + 1e-9


def test_table4_row_sample_std_and_bad_input():
    results = [{"arch": "a", **{k: 1.0 for k in KEYS}}, {"arch": "b", **{k: 3.0 for k in KEYS}}]
    assert nb201.table4_row(results, ddof=1)["cifar10_test"] == {"mean": 2.0, "std": pytest.approx(2**0.5)}
    with pytest.raises(ValueError):
        nb201.table4_row([])
    with pytest.raises(ValueError):
        nb201.table4_row(results[:1], ddof=1)


# --------------------------------------------------------------------------------------------
# Genotype strings against the official parsers
# --------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(ops=arch_ops)
def test_arch_string_round_trips_through_the_official_api_parser(ops):
    nas_201_api = pytest.importorskip("nas_201_api")
    g = NB201Genotype(ops)
    s = g.arch_str
    assert NB201Genotype.from_arch_str(s) == g
    nodes = nas_201_api.NASBench201API.str2lists(s)
    assert [pair for node in nodes for pair in node] == [(op, frm) for op, (_, frm) in zip(ops, NB201_EDGES)]
    matrix = nas_201_api.NASBench201API.str2matrix(s)
    for op, (to, frm) in zip(ops, NB201_EDGES):
        assert matrix[to, frm] == NB201_PRIMITIVES.index(op)


@settings(max_examples=25, deadline=None)
@given(ops=arch_ops)
def test_arch_string_round_trips_through_cell_structure(ops):
    genotypes = pytest.importorskip("xautodl.models.cell_searchs")
    s = NB201Genotype(ops).arch_str
    structure = genotypes.CellStructure.str2structure(s)
    assert structure.tostr() == s
    assert NB201Genotype.from_arch_str(structure.tostr()).ops == ops


# --------------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------------


def test_space_registry_and_supernet_contract():
    assert get_space("nb201") is SPACE
    assert (SPACE.name, SPACE.default_channels, SPACE.default_layers) == ("nb201", 16, 5)
    torch.manual_seed(0)
    net = SPACE.build(4, 1, 10)
    (alphas,) = net.arch_parameters()
    assert alphas.shape == (6, 5) and "alphas" in net.state_dict()
    assert 0 < alphas.abs().max() < 1e-2  # 1e-3 * N(0, 1)
    weight_ids = {id(p) for p in net.weights()}
    assert id(alphas) not in weight_ids
    assert len(weight_ids) + 1 == len(list(net.parameters()))
    assert [n for n, _ in net.named_weights()] == [n for n, _ in net.named_parameters() if n != "alphas"]
    x, y = torch.randn(3, 3, 16, 16), torch.tensor([0, 1, 2])
    logits = net(x)
    assert logits.shape == (3, 10)
    F.cross_entropy(logits, y).backward()
    assert alphas.grad is not None and alphas.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.weights())


def test_functional_call_with_replaced_alphas_changes_the_output():
    torch.manual_seed(0)
    net = NB201Supernet(4, 1, 10).eval()
    x = torch.randn(2, 3, 16, 16)
    only_none = torch.full((6, 5), -30.0)
    only_none[:, 0] = 30.0
    out = torch.func.functional_call(net, {"alphas": only_none}, (x,))
    # Every edge is 'none': the cells output zeros; the logits differ from the mixed supernet.
    assert not torch.allclose(out, net(x))
    assert torch.equal(net.alphas.detach().abs() < 1e-2, torch.ones(6, 5, dtype=torch.bool))


def test_genotype_is_argmax_per_edge_including_none(bench):
    net = NB201Supernet(4, 1, 10)
    target = NB201Genotype.from_arch_str(DEFAULT_ARCHS[4])  # has 'none' on four edges
    with torch.no_grad():
        net.alphas.zero_()
        for k, op in enumerate(target.ops):
            net.alphas[k, NB201_PRIMITIVES.index(op)] = 1.0
    assert net.genotype() == target
    assert bench.query(net.genotype())["arch"] == DEFAULT_ARCHS[4]


def test_avg_pool_has_a_1x1_preprocess_only_when_channels_change():
    assert AvgPool(8, 8).preprocess is None and not list(AvgPool(8, 8).parameters())
    pool = AvgPool(4, 8)
    assert pool.preprocess is not None
    assert pool(torch.randn(2, 4, 8, 8)).shape == (2, 8, 8, 8)


def test_supernet_matches_xautodl_tiny_network_darts():
    """Same parameter count as the peer implementation at C=16, N=5; same outputs with the same weights."""
    pytest.importorskip("xautodl")
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts

    assert tuple(NAS_BENCH_201) == NB201_PRIMITIVES
    peer = TinyNetworkDarts(16, 5, 4, 10, NAS_BENCH_201, False, True)
    ours = NB201Supernet(16, 5, 10)
    assert sum(p.numel() for p in ours.weights()) == sum(p.numel() for p in peer.get_weights())
    assert ours.alphas.shape == peer.arch_parameters.shape

    torch.manual_seed(1)
    peer = TinyNetworkDarts(8, 2, 4, 10, NAS_BENCH_201, False, True)
    ours = NB201Supernet(8, 2, 10)
    theirs = peer.state_dict()
    mine = ours.state_dict()
    assert [v.shape for v in theirs.values()] == [v.shape for v in mine.values()]
    ours.load_state_dict(dict(zip(mine.keys(), theirs.values())))
    x = torch.randn(4, 3, 16, 16)
    peer.train(), ours.train()
    torch.testing.assert_close(ours(x), peer(x)[1])
    assert ours.genotype().arch_str == peer.genotype().tostr()


# --------------------------------------------------------------------------------------------
# Config and command line
# --------------------------------------------------------------------------------------------


def test_params_nb201_section_is_the_nb201_search_and_query():
    """``sd-darts search --space nb201 --params params.yaml`` reads the nb201 section: the paper's
    NAS-Bench-201 search (C = 16, N = 5, 50 epochs, batch 64, NB201's DARTS optimiser)."""
    from sd_darts.cli import build_parser
    from sd_darts.experiment.schema import read_params
    from sd_darts.experiment.settings import nb201_query_settings
    from sd_darts.search.config import PARAMS_SECTIONS, SearchConfig
    from sd_darts.utils import config

    args = build_parser().parse_args(["search", "--space", "nb201", "--params", str(REPO / "params.yaml")])
    search = config.resolve(SearchConfig, PARAMS_SECTIONS["nb201"], args)
    assert (search.space, search.epochs, search.batch_size, search.init_channels, search.layers) == (
        "nb201",
        50,
        64,
        16,
        5,
    )
    assert (search.weight_decay, search.nesterov) == (5e-4, True)
    query_cfg = nb201_query_settings(read_params(REPO / "params.yaml"))
    assert query_cfg.benchmark.endswith(nb201.BENCHMARK_FILES[0]) and query_cfg.table4


def test_cli_queries_files_and_strings_with_one_load(tmp_path, bench_file, capsys, monkeypatch):
    path, expected = bench_file
    archs = list(expected)
    for i, arch in enumerate(archs[:2]):
        save_genotype(tmp_path / f"seed{i}" / "genotype.json", NB201Genotype.from_arch_str(arch))
    loads = []
    real = nb201.torch_load_safely
    monkeypatch.setattr(nb201, "torch_load_safely", lambda p: loads.append(p) or real(p))
    out_file = tmp_path / "res" / "nb201.json"
    argv = [
        "nb201-query",
        "--benchmark",
        str(path),
        str(tmp_path / "seed0"),
        str(tmp_path / "seed1" / "genotype.json"),
        archs[2],
        "--json",
        "--table4",
        "--out",
        str(out_file),
    ]
    assert main(argv) == 0
    assert len(loads) == 1
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads(out_file.read_text())
    assert result["hp"] == "200" and result["official_file_name"] is True
    assert [r["arch"] for r in result["results"]] == archs[:3]
    assert result["results"][0]["source"] == str(tmp_path / "seed0")
    assert result["results"][2]["source"] == f"benchmark index {result['results'][2]['index']}"
    for r in result["results"]:
        for key in KEYS:
            assert r[key] == pytest.approx(expected[r["arch"]][key])
    t4 = result["table4"]
    assert t4["archs"] == archs[:3] and t4["n"] == 3
    vals = [expected[a]["imagenet16_test"] for a in archs[:3]]
    assert t4["imagenet16_test"]["mean"] == pytest.approx(np.mean(vals))
    assert t4["imagenet16_test"]["std"] == pytest.approx(np.std(vals))
    assert result["best"]["arch"] == max(expected, key=lambda a: expected[a]["cifar10_valid"])


def test_cli_table_output_and_params_file(tmp_path, bench_file, capsys):
    path, expected = bench_file
    params = tmp_path / "params.yaml"
    params.write_text(f"nb201_query:\n  benchmark: {path}\n  best: false\n")
    assert main(["nb201-query", "--params", str(params), DEFAULT_ARCHS[1]]) == 0
    text = capsys.readouterr().out
    assert "CIFAR-100 test" in text and f"{expected[DEFAULT_ARCHS[1]]['cifar100_test']:.2f}" in text
    (row,) = [line for line in text.splitlines() if DEFAULT_ARCHS[1] in line]
    assert row.startswith("| benchmark index ")  # an arch string's row is named by its index
    assert "benchmark best" not in text


@pytest.mark.parametrize(
    "args, needle",
    [
        (["DARTS_V2"], "DARTS-space genotype"),
        (["|none~0|+|none~0|none~1|"], "malformed NAS-Bench-201 architecture string"),
        (["no/such/run"], "'no/such/run' is not an existing file or folder; nb201-query takes an arch string"),
    ],
)
def test_cli_bad_genotypes_exit_2_before_loading(tmp_path, capsys, args, needle, monkeypatch):
    monkeypatch.setattr(
        nb201, "load_benchmark", lambda p: pytest.fail("benchmark loaded before genotypes were checked")
    )
    assert main(["nb201-query", "--benchmark", str(tmp_path / "x.pth"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert "DARTS_V1" not in err  # the DARTS-space names are not what nb201-query takes


def test_cli_missing_benchmark_exits_2(tmp_path, capsys, api_module):
    assert main(["nb201-query", "--benchmark", str(tmp_path / "b.pth"), DEFAULT_ARCHS[0]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "b.pth") in err[0]


# --------------------------------------------------------------------------------------------
# End to end: a tiny NB201 search on digits, then the benchmark query of its genotype
# --------------------------------------------------------------------------------------------


def test_tiny_nb201_search_on_digits_then_query(tmp_path, capsys):
    nas_201_api = pytest.importorskip("nas_201_api")
    out = tmp_path / "run"
    argv = [
        "search",
        "--space",
        "nb201",
        "--dataset",
        "digits",
        "--image-size",
        "16",
        "--epochs",
        "2",
        "--warmup-epochs",
        "1",
        "--window",
        "1",
        "--init-channels",
        "4",
        "--layers",
        "1",
        "--batch-size",
        "8",
        "--limit-samples",
        "32",
        "--device",
        "cpu",
        "--seed",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    saved = json.loads((out / "genotype.json").read_text())
    assert set(saved) == {"space", "arch"} and saved["space"] == "nb201"
    genotype = NB201Genotype.from_arch_str(saved["arch"])
    assert nas_201_api.NASBench201API.str2lists(saved["arch"])  # the official parser accepts it
    alphas = torch.load(out / "alphas" / "epoch_001.pt", weights_only=True)
    assert [tuple(v.shape) for v in alphas.values()] == [(6, 5)]
    (final,) = alphas.values()
    assert genotype.ops == tuple(NB201_PRIMITIVES[i] for i in final.argmax(dim=1).tolist())

    bench_path = tmp_path / "bench.pth"
    expected = write_benchmark(bench_path, archs=[saved["arch"]] + [a for a in DEFAULT_ARCHS if a != saved["arch"]])
    assert main(["nb201-query", "--benchmark", str(bench_path), str(out), "--json", "--no-best"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["arch"] == saved["arch"]
    assert row["cifar10_test"] == pytest.approx(expected[saved["arch"]]["cifar10_test"])


# --------------------------------------------------------------------------------------------
# Malformed benchmark files: one line, exit 2, no traceback, nothing written
# --------------------------------------------------------------------------------------------


def _paths(node, prefix=(), depth=6):
    """Every (path, value) inside a nested dict/list structure, down to ``depth``."""
    out = [(prefix, node)]
    if depth and isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,), depth - 1)
    elif depth and isinstance(node, list) and node:
        out += _paths(node[0], prefix + (0,), depth - 1)
    return out


def _replace(data, path, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


_GARBAGE = st.sampled_from([None, 3, -1, 2.5, "x", "", [], [1, "a"], {}, {"a": 1}, {1: None}, True])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_corrupted_benchmark_entry_is_a_one_line_error_never_a_traceback(tmp_path_factory, api_module, data):
    """Replace one entry anywhere in a benchmark file by garbage: the query either answers (the
    entry was not needed) or stops with one line naming the file; nothing is written on failure."""
    tmp = tmp_path_factory.mktemp("bad")
    bench = benchmark_dict(DEFAULT_ARCHS[:2])
    candidates = [p for p, _ in _paths(bench) if p]
    path = data.draw(st.sampled_from(candidates), label="path")
    _replace(bench, path, data.draw(_GARBAGE, label="value"))
    file = tmp / "NAS-Bench-201-v1_1-096897.pth"
    torch.save(bench, file)
    genotype = tmp / "g.json"
    save_genotype(genotype, NB201Genotype.from_arch_str(DEFAULT_ARCHS[0]))
    out = tmp / "out" / "q.json"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["nb201-query", "--benchmark", str(file), str(genotype), "--out", str(out), "--json"])
    text = err.getvalue().strip()
    assert code in (0, 2), (path, text)
    if code == 2:
        assert len(text.splitlines()) == 1 and "Traceback" not in text, (path, text)
        assert not out.parent.exists()
    else:
        assert json.loads(out.read_text())["results"]


def test_benchmark_path_that_is_a_folder_and_out_that_is_a_folder(tmp_path, capsys, bench_file, monkeypatch):
    from sd_darts.cli import main

    loads = []
    monkeypatch.setattr(nb201, "load_benchmark", lambda p: loads.append(p))
    genotype = tmp_path / "g.json"
    save_genotype(genotype, NB201Genotype.from_arch_str(DEFAULT_ARCHS[0]))
    assert main(["nb201-query", "--benchmark", str(bench_file[0]), str(genotype), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err and loads == []  # refused before the (long) load
    monkeypatch.undo()
    assert main(["nb201-query", "--benchmark", str(tmp_path), str(genotype)]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and len(err.strip().splitlines()) == 1
