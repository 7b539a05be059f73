"""Genotypes: the DARTS derivation rule, NB201 strings, JSON files and shipped genotypes."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sd_darts.errors import UserError
from sd_darts.genotypes import (
    DARTS_V1,
    DARTS_V2,
    NB201_PRIMITIVES,
    PRIMITIVES,
    SD_DARTS,
    SHIPPED_GENOTYPES,
    Genotype,
    NB201Genotype,
    count_op,
    derive_cell,
    derive_genotype,
    derive_nb201_genotype,
    genotype_from_dict,
    genotype_to_dict,
    load_genotype,
    save_genotype,
)

NONE = PRIMITIVES.index("none")
OP = {name: k for k, name in enumerate(PRIMITIVES)}
EDGE_START = [0, 2, 5, 9]  # first alpha row of each intermediate node


def test_primitives_in_darts_order():
    assert PRIMITIVES == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )
    assert Genotype._fields == ("normal", "normal_concat", "reduce", "reduce_concat")


# ---------------------------------------------------------------------------------------------
# DARTS derivation rule
# ---------------------------------------------------------------------------------------------


def _hand_built() -> np.ndarray:
    """Alphas (14, 8) where 'none' dominates some edges; expected genotype written by hand."""
    w = np.full((14, 8), 0.01)
    # node 0 (rows 0, 1): edge 0 has none = 0.9 (ignored) and dil_conv_5x5 = 0.2;
    # edge 1 has sep_conv_3x3 = 0.3.
    w[0, NONE], w[0, OP["dil_conv_5x5"]] = 0.9, 0.2
    w[1, OP["sep_conv_3x3"]] = 0.3
    # node 1 (rows 2..4, inputs 0..2): input 0 has the largest 'none' but weak ops -> dropped.
    w[2, NONE], w[2, OP["max_pool_3x3"]] = 0.95, 0.05
    w[3, OP["skip_connect"]] = 0.4
    w[4, OP["avg_pool_3x3"]] = 0.5
    # node 2 (rows 5..8, inputs 0..3): input 3 strongest, then input 1.
    w[5 + 3, OP["sep_conv_5x5"]] = 0.7
    w[5 + 1, OP["dil_conv_3x3"]] = 0.6
    w[5 + 2, OP["max_pool_3x3"]] = 0.5
    # node 3 (rows 9..13, inputs 0..4): inputs 4 and 0.
    w[9 + 4, OP["skip_connect"]] = 0.8
    w[9 + 0, OP["sep_conv_3x3"]] = 0.65
    w[9 + 2, NONE] = 0.99
    return w


def test_derivation_on_hand_built_alphas():
    w = _hand_built()
    expected = [
        ("sep_conv_3x3", 1),
        ("dil_conv_5x5", 0),
        ("avg_pool_3x3", 2),
        ("skip_connect", 1),
        ("sep_conv_5x5", 3),
        ("dil_conv_3x3", 1),
        ("skip_connect", 4),
        ("sep_conv_3x3", 0),
    ]
    g = derive_genotype(w, w[::-1].copy())
    assert g.normal == expected
    assert g.normal_concat == [2, 3, 4, 5] and g.reduce_concat == [2, 3, 4, 5]
    # Torch tensors (with grad) give the same genotype as numpy arrays.
    t = torch.tensor(w, requires_grad=True)
    assert derive_genotype(t, t).normal == expected


def test_none_excluded_even_when_largest_everywhere():
    w = np.full((14, 8), 0.01)
    w[:, NONE] = 0.93
    w[:, OP["avg_pool_3x3"]] = 0.02
    g = derive_genotype(w, w)
    assert count_op(g, "none") == 0
    assert all(op == "avg_pool_3x3" for op, _ in g.normal + g.reduce)


def test_ties_are_broken_stably():
    # All weights equal: lower input index and earlier op win.
    w = np.full((14, 8), 1.0 / 8)
    g = derive_genotype(w, w)
    assert g.normal == [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4
    # Two ops tie on an edge: the one earlier in PRIMITIVES wins, wherever 'none' is.
    w = np.full((14, 8), 0.01)
    w[:, OP["sep_conv_5x5"]] = 0.3
    w[:, OP["skip_connect"]] = 0.3
    g = derive_genotype(w, w)
    assert {op for op, _ in g.normal} == {"skip_connect"}
    # Edge strengths tie between inputs 1 and 3 of node 2, input 0 weaker: 1 listed before 3.
    w = np.full((14, 8), 0.01)
    w[5 + 3, OP["sep_conv_3x3"]] = 0.5
    w[5 + 1, OP["sep_conv_3x3"]] = 0.5
    assert derive_genotype(w, w).normal[4:6] == [("sep_conv_3x3", 1), ("sep_conv_3x3", 3)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), perm_seed=st.integers(0, 2**32 - 1))
def test_derivation_invariants_and_none_position(seed, perm_seed):
    """Random alphas: kept edges beat dropped ones, ops are argmax without 'none', and moving
    'none' to another column (permuting the primitives) does not change the genotype."""
    rng = np.random.default_rng(seed)
    alphas = rng.normal(size=(14, 8))
    w = np.exp(alphas) / np.exp(alphas).sum(1, keepdims=True)
    gene = derive_cell(w)
    assert len(gene) == 8
    for node in range(4):
        rows = w[EDGE_START[node] : EDGE_START[node] + node + 2]
        strength = np.delete(rows, NONE, axis=1).max(1)
        kept = [gene[2 * node][1], gene[2 * node + 1][1]]
        assert kept[0] != kept[1] and all(0 <= j < node + 2 for j in kept)
        assert strength[kept[0]] >= strength[kept[1]]
        dropped = [j for j in range(node + 2) if j not in kept]
        assert all(strength[kept[1]] >= strength[j] for j in dropped)
        for op, j in gene[2 * node : 2 * node + 2]:
            assert op != "none" and rows[j][OP[op]] == strength[j]
    perm = np.random.default_rng(perm_seed).permutation(8)
    assert derive_cell(w[:, perm], 4, [PRIMITIVES[k] for k in perm]) == gene


def test_derivation_rejects_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        derive_genotype(np.zeros((14, 7)), np.zeros((14, 8)))
    with pytest.raises(ValueError, match="shape"):
        derive_genotype(np.zeros((9, 8)), np.zeros((9, 8)))


# ---------------------------------------------------------------------------------------------
# NAS-Bench-201
# ---------------------------------------------------------------------------------------------


def test_nb201_arch_string_format():
    g = NB201Genotype(("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect"))
    s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert g.arch_str == s == str(g)
    assert NB201Genotype.from_arch_str(s) == g


@given(st.tuples(*[st.sampled_from(NB201_PRIMITIVES)] * 6))
def test_nb201_arch_string_round_trip(ops):
    g = NB201Genotype(ops)
    assert NB201Genotype.from_arch_str(g.arch_str) == g
    assert genotype_from_dict(json.loads(json.dumps(genotype_to_dict(g)))) == g


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "|none~0|+|none~0|none~1|",  # two nodes only
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|",  # four nodes
        "|none~0|+|none~0|none~1|+|none~0|none~1|",  # node 3 lacks an input
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # wrong input index
        "|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # unknown op
        "none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # missing bar
        "|none~0|+|none~0|none~1|+|none~0|none~1|none-2|",  # bad separator
        "|none~0|+|none~0||none~1|+|none~0|none~1|none~2|",  # empty item
    ],
)
def test_nb201_bad_strings_rejected(bad):
    with pytest.raises(UserError):
        NB201Genotype.from_arch_str(bad)


def test_nb201_constructor_validates():
    with pytest.raises(UserError, match="6 edge ops"):
        NB201Genotype(("none",) * 5)
    with pytest.raises(UserError, match="unknown"):
        NB201Genotype(("none",) * 5 + ("sep_conv_3x3",))


def test_nb201_derivation_includes_none_and_ties():
    w = np.zeros((6, 5))
    w[0, 0] = 1.0  # none wins on edge 1<-0
    w[1, 3] = 1.0
    w[2, 2] = w[2, 4] = 1.0  # tie: nor_conv_1x1 (earlier) wins
    # edges 3..5 all zero: tie over all ops -> none
    g = derive_nb201_genotype(torch.tensor(w))
    assert g.ops == ("none", "nor_conv_3x3", "nor_conv_1x1", "none", "none", "none")
    assert count_op(g, "none") == 4
    with pytest.raises(ValueError):
        derive_nb201_genotype(np.zeros((6, 4)))


# ---------------------------------------------------------------------------------------------
# JSON files
# ---------------------------------------------------------------------------------------------


def test_darts_json_round_trip(tmp_path):
    for g in (DARTS_V1, DARTS_V2, SD_DARTS, derive_genotype(_hand_built(), _hand_built())):
        path = tmp_path / "genotype.json"
        save_genotype(path, g)
        assert json.loads(path.read_text())["space"] == "darts"
        assert load_genotype(path) == g
        assert load_genotype(str(tmp_path)) == g  # a run folder holding genotype.json
    assert [p.name for p in tmp_path.iterdir()] == ["genotype.json"]  # no temporary left


def test_nb201_json_round_trip(tmp_path):
    g = NB201Genotype(("skip_connect", "none", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3", "none"))
    save_genotype(tmp_path / "g.json", g)
    assert json.loads((tmp_path / "g.json").read_text()) == {"space": "nb201", "arch": g.arch_str}
    assert load_genotype(tmp_path / "g.json") == g


def _mutated(**changes):
    d = genotype_to_dict(DARTS_V2)
    d.update(changes)
    return d


_GOOD_NORMAL = genotype_to_dict(DARTS_V2)["normal"]


@pytest.mark.parametrize(
    "content, message",
    [
        (_mutated(normal=[["conv_9x9", 0]] + _GOOD_NORMAL[1:]), "unknown op 'conv_9x9'"),
        (_mutated(normal=[["none", 0]] + _GOOD_NORMAL[1:]), "unknown op 'none'"),
        (_mutated(normal=[["sep_conv_3x3", 2]] + _GOOD_NORMAL[1:]), "input 2"),  # node 0 sees 0..1
        (_mutated(normal=_GOOD_NORMAL[:7] + [["sep_conv_3x3", 5]]), "input 5"),  # node 3 sees 0..4
        (_mutated(normal=[["sep_conv_3x3", -1]] + _GOOD_NORMAL[1:]), "input -1"),
        (_mutated(normal=[["sep_conv_3x3", True]] + _GOOD_NORMAL[1:]), "input True"),
        (_mutated(normal=[["sep_conv_3x3", "0"]] + _GOOD_NORMAL[1:]), "input '0'"),
        (_mutated(normal=[["sep_conv_3x3"]] + _GOOD_NORMAL[1:]), "pair"),
        (_mutated(normal=_GOOD_NORMAL[:7]), "7 edges"),
        (_mutated(normal=[]), "non-empty"),
        (_mutated(normal_concat=[2, 3, 4, 6]), "normal_concat"),
        (_mutated(reduce_concat=[2, 2, 3]), "repeats"),
        (_mutated(reduce_concat=[]), "reduce_concat"),
        (_mutated(space="nasnet"), "unknown or missing 'space'"),
        (_mutated(extra=1), "unexpected keys"),
        ({k: v for k, v in genotype_to_dict(DARTS_V2).items() if k != "reduce"}, "missing keys"),
        ({"space": "nb201", "arch": "|none~0|"}, "malformed"),
        ({"space": "nb201"}, "missing key 'arch'"),
        ([1, 2, 3], "JSON object"),
    ],
)
def test_malformed_genotype_files_rejected(tmp_path, content, message):
    path = tmp_path / "genotype.json"
    path.write_text(json.dumps(content))
    with pytest.raises(UserError) as info:
        load_genotype(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


def test_not_json_and_missing_file_rejected(tmp_path):
    path = tmp_path / "genotype.json"
    path.write_text('{"space": "darts", "normal": [')
    with pytest.raises(UserError, match="not valid JSON"):
        load_genotype(path)
    with pytest.raises(UserError, match="neither a shipped genotype"):
        load_genotype(tmp_path / "absent.json")
    with pytest.raises(UserError, match="DARTS_V1, DARTS_V2, SD_DARTS"):
        load_genotype("DARTS_V3")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(UserError, match="neither a shipped genotype"):
        load_genotype(tmp_path / "empty_run")  # a folder without genotype.json
    with pytest.raises(UserError, match="neither a shipped genotype"):
        load_genotype(tmp_path / "absent")


# ---------------------------------------------------------------------------------------------
# Shipped genotypes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHIPPED_GENOTYPES))
def test_shipped_genotypes_valid(name):
    g = SHIPPED_GENOTYPES[name]
    assert load_genotype(name) is g
    assert genotype_from_dict(genotype_to_dict(g), source=name) == g
    for cell in (g.normal, g.reduce):
        assert len(cell) == 8
        for node in range(4):
            inputs = [cell[2 * node][1], cell[2 * node + 1][1]]
            assert inputs[0] != inputs[1]  # the DARTS rule keeps two distinct edges
    assert count_op(g, "none") == 0


def test_published_genotypes():
    assert count_op(DARTS_V1, "skip_connect") == 6
    assert count_op(DARTS_V2, "skip_connect") == 5
    assert DARTS_V2.normal[-1] == ("dil_conv_3x3", 2)
    assert DARTS_V1.reduce[-1] == ("avg_pool_3x3", 0)


def test_sd_darts_matches_figure_4_text():
    """The op multisets and the c_{k-2} edges are read unambiguously from the paper's Fig. 4."""
    assert Counter(op for op, _ in SD_DARTS.normal) == Counter(
        {"sep_conv_3x3": 4, "skip_connect": 2, "dil_conv_3x3": 1, "dil_conv_5x5": 1}
    )
    assert Counter(op for op, _ in SD_DARTS.reduce) == Counter(
        {"max_pool_3x3": 3, "avg_pool_3x3": 1, "sep_conv_5x5": 1, "sep_conv_3x3": 1, "skip_connect": 2}
    )
    from_ck2 = lambda cell: [op for op, j in cell if j == 0]
    assert from_ck2(SD_DARTS.normal) == ["sep_conv_3x3", "skip_connect", "dil_conv_3x3", "skip_connect"]
    assert from_ck2(SD_DARTS.reduce) == ["max_pool_3x3", "max_pool_3x3", "max_pool_3x3", "avg_pool_3x3"]
    assert SD_DARTS.normal[:2] == [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)]
    assert SD_DARTS.reduce[:2] == [("max_pool_3x3", 0), ("sep_conv_5x5", 1)]


def test_count_op_rejects_unknown_op():
    with pytest.raises(ValueError):
        count_op(DARTS_V2, "nor_conv_3x3")
    with pytest.raises(ValueError):
        count_op(NB201Genotype(("none",) * 6), "sep_conv_3x3")
