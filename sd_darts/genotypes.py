"""Genotypes of the DARTS and NAS-Bench-201 search spaces: the discrete architecture read off the
alphas at the end of a search.

:func:`derive_genotype` is DARTS's rule (§2.4), used unchanged by SD-DARTS (paper §4.1);
:class:`NB201Genotype` reads and writes NAS-Bench-201's architecture string.  ``genotype.json``
files from elsewhere are validated strictly (docs/spaces.md, "Genotypes").
"""

from __future__ import annotations

import os
import re
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .utils.files import read_json, write_json

# --------------------------------------------------------------------------------------------
# DARTS space
# --------------------------------------------------------------------------------------------

#: The 8 candidate operations of the DARTS space, in the DARTS order (= alpha columns).
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

#: DARTS genotype: ``normal``/``reduce`` are lists of ``(op, input_index)`` pairs, two per
#: intermediate node; ``*_concat`` are the node indices concatenated into the cell output.
Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")


def _to_numpy(weights: Any, what: str) -> np.ndarray:
    """Accept a torch tensor (any device, with or without grad) or an array-like."""
    if hasattr(weights, "detach"):
        weights = weights.detach().cpu().numpy()
    arr = np.asarray(weights, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array of edge x op weights, got shape {arr.shape}")
    return arr


def derive_cell(weights: Any, steps: int = 4, primitives: Sequence[str] = PRIMITIVES) -> list[tuple[str, int]]:
    """DARTS rule for one cell (Liu et al. 2019, §2.4; ``Network.genotype`` in quark0/darts).

    For intermediate node ``i`` (incoming edges from inputs ``0 .. i+1``) keep the two edges
    whose strongest non-``none`` op weight is highest; on each kept edge take the strongest
    op other than ``none``.  Kept edges are listed strongest first.

    Ties are broken stably: between edges of equal strength the lower input index wins (and is
    listed first); between ops of equal weight the op earlier in ``primitives`` wins.  A search
    over ops without ``none`` (``--primitives``) has nothing to exclude: every op is a candidate.
    """
    weights = _to_numpy(weights, "weights")
    none_idx = list(primitives).index("none") if "none" in primitives else -1
    n_edges = sum(i + 2 for i in range(steps))
    if weights.shape != (n_edges, len(primitives)):
        raise ValueError(
            f"alphas for {steps} nodes must have shape ({n_edges}, {len(primitives)}), got {weights.shape}"
        )
    candidates = [k for k in range(len(primitives)) if k != none_idx]
    gene: list[tuple[str, int]] = []
    start = 0
    for i in range(steps):
        n_in = i + 2
        w = weights[start : start + n_in]
        # Best non-none op per edge: first maximum in PRIMITIVES order.
        best_op = [max(candidates, key=lambda k, row=row: (row[k], -k)) for row in w]
        strength = [w[j][best_op[j]] for j in range(n_in)]
        # sorted() is stable: equal strengths keep ascending input order.
        kept = sorted(range(n_in), key=lambda j: -strength[j])[:2]
        for j in kept:
            gene.append((primitives[best_op[j]], j))
        start += n_in
    return gene


def derive_genotype(
    weights_normal: Any,
    weights_reduce: Any,
    steps: int = 4,
    multiplier: int = 4,
    primitives: Sequence[str] = PRIMITIVES,
) -> Genotype:
    """Derive the discrete DARTS genotype from softmaxed alphas (DARTS §2.4).

    ``weights_normal`` and ``weights_reduce`` are the per-edge softmax of the alphas, shape
    ``(14, 8)`` for 4 nodes (torch tensors or numpy arrays).  The concatenated nodes are the
    last ``multiplier`` intermediate nodes, i.e. 2..5 for the DARTS cell.  ``primitives``
    names the alpha columns (a supernet searched over a subset of the ops).  See
    :func:`derive_cell` for the rule and its tie-breaking.
    """
    wn = _to_numpy(weights_normal, "weights_normal")
    wr = _to_numpy(weights_reduce, "weights_reduce")
    concat = list(range(2 + steps - multiplier, steps + 2))
    return Genotype(
        normal=derive_cell(wn, steps, primitives),
        normal_concat=concat,
        reduce=derive_cell(wr, steps, primitives),
        reduce_concat=list(concat),
    )


# DARTS (second order is V2, first order is V1), as published in quark0/darts cnn/genotypes.py
# and Fig. 4/5 of the DARTS paper.
DARTS_V1 = Genotype(
    normal=[
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("skip_connect", 0),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("skip_connect", 2),
    ],
    normal_concat=[2, 3, 4, 5],
    reduce=[
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("skip_connect", 2),
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("skip_connect", 2),
        ("avg_pool_3x3", 0),
    ],
    reduce_concat=[2, 3, 4, 5],
)

DARTS_V2 = Genotype(
    normal=[
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("skip_connect", 0),
        ("dil_conv_3x3", 2),
    ],
    normal_concat=[2, 3, 4, 5],
    reduce=[
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
    ],
    reduce_concat=[2, 3, 4, 5],
)

# SD-DARTS cells, paper Fig. 4 (xi = 25, K = 2), reconstructed from the figure (no official code
# or genotype file is public).  The op multisets are unambiguous; where the figure leaves an
# input open, the reading whose network sizes round to the paper's 3.3M / 4.7M parameters is
# taken.  Every reading and why: docs/fig4_reading.md.
SD_DARTS = Genotype(
    normal=[
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("sep_conv_3x3", 1),
        ("dil_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("dil_conv_5x5", 1),
    ],
    normal_concat=[2, 3, 4, 5],
    reduce=[
        ("max_pool_3x3", 0),
        ("sep_conv_5x5", 1),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("avg_pool_3x3", 0),
        ("sep_conv_3x3", 3),
    ],
    reduce_concat=[2, 3, 4, 5],
)

# --------------------------------------------------------------------------------------------
# NAS-Bench-201 space
# --------------------------------------------------------------------------------------------

#: The 5 candidate operations of NAS-Bench-201, in the official order (= alpha columns).
NB201_PRIMITIVES: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: The 6 edges of the NAS-Bench-201 cell in the official order, as ``(to_node, from_node)``:
#: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2 (= alpha rows).
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

_NB201_ITEM = re.compile(r"^([A-Za-z0-9_]+)~(\d+)$")


@dataclass(frozen=True)
class NB201Genotype:
    """A NAS-Bench-201 cell: one op per edge, in the order of :data:`NB201_EDGES`."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        object.__setattr__(self, "ops", ops)
        if len(ops) != len(NB201_EDGES):
            raise UserError(f"a NAS-Bench-201 genotype has {len(NB201_EDGES)} edge ops, got {len(ops)}")
        for op in ops:
            if op not in NB201_PRIMITIVES:
                raise UserError(f"unknown NAS-Bench-201 op {op!r}; known ops: {', '.join(NB201_PRIMITIVES)}")

    @property
    def arch_str(self) -> str:
        """Official architecture string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        nodes = []
        k = 0
        for to in range(1, 4):
            items = []
            for frm in range(to):
                items.append(f"{self.ops[k]}~{frm}")
                k += 1
            nodes.append("|" + "|".join(items) + "|")
        return "+".join(nodes)

    @classmethod
    def from_arch_str(cls, s: str) -> NB201Genotype:
        """Parse an official architecture string; anything malformed raises :class:`UserError`."""
        if not isinstance(s, str):
            raise UserError(f"a NAS-Bench-201 architecture string must be text, got {type(s).__name__}")
        text = s.strip()
        shape_hint = "expected '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
        parts = text.split("+")
        if len(parts) != 3:
            raise UserError(f"malformed NAS-Bench-201 architecture string {s!r}: {shape_hint}")
        ops: list[str] = []
        for to, part in enumerate(parts, start=1):
            if len(part) < 2 or not (part.startswith("|") and part.endswith("|")):
                raise UserError(f"malformed NAS-Bench-201 architecture string {s!r}: {shape_hint}")
            items = part[1:-1].split("|")
            if len(items) != to:
                raise UserError(
                    f"malformed NAS-Bench-201 architecture string {s!r}: node {to} needs {to} inputs, got {len(items)}"
                )
            for frm, item in enumerate(items):
                m = _NB201_ITEM.match(item)
                if m is None or int(m.group(2)) != frm:
                    raise UserError(
                        f"malformed NAS-Bench-201 architecture string {s!r}: item {item!r} of node {to} "
                        f"should be 'op~{frm}'"
                    )
                if m.group(1) not in NB201_PRIMITIVES:
                    raise UserError(
                        f"unknown NAS-Bench-201 op {m.group(1)!r} in {s!r}; known ops: {', '.join(NB201_PRIMITIVES)}"
                    )
                ops.append(m.group(1))
        return cls(tuple(ops))

    def __str__(self) -> str:
        return self.arch_str


def derive_nb201_genotype(weights: Any) -> NB201Genotype:
    """NAS-Bench-201 derivation: plain argmax per edge, ``none`` included (Dong & Yang 2020).

    ``weights`` has shape ``(6, 5)`` (rows in :data:`NB201_EDGES` order, columns in
    :data:`NB201_PRIMITIVES` order); ties go to the op earlier in ``NB201_PRIMITIVES``.
    Softmax is monotone, so alphas or their softmax give the same genotype.
    """
    w = _to_numpy(weights, "NAS-Bench-201 weights")
    if w.shape != (len(NB201_EDGES), len(NB201_PRIMITIVES)):
        raise ValueError(f"NAS-Bench-201 weights must have shape (6, 5), got {w.shape}")
    return NB201Genotype(tuple(NB201_PRIMITIVES[int(np.argmax(row))] for row in w))


# --------------------------------------------------------------------------------------------
# JSON files, shipped genotypes, statistics
# --------------------------------------------------------------------------------------------

SHIPPED_GENOTYPES: dict[str, Genotype] = {
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
    "SD_DARTS": SD_DARTS,
}

_DARTS_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")


def genotype_to_dict(g: Genotype | NB201Genotype) -> dict[str, Any]:
    """JSON-ready form: ``{"space": "darts", "normal": [[op, idx], ...], ...}`` or
    ``{"space": "nb201", "arch": "<arch string>"}``."""
    if isinstance(g, NB201Genotype):
        return {"space": "nb201", "arch": g.arch_str}
    if isinstance(g, Genotype):
        return {
            "space": "darts",
            "normal": [[str(op), int(idx)] for op, idx in g.normal],
            "normal_concat": [int(i) for i in g.normal_concat],
            "reduce": [[str(op), int(idx)] for op, idx in g.reduce],
            "reduce_concat": [int(i) for i in g.reduce_concat],
        }
    raise TypeError(f"not a genotype: {type(g).__name__}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_cell(edges: Any, concat: Any, cell: str, source: str) -> tuple[list[tuple[str, int]], list[int]]:
    def bad(problem: str) -> UserError:
        return UserError(f"genotype {source}: {problem}")

    if not isinstance(edges, list) or not edges:
        raise bad(f"'{cell}' must be a non-empty list of [op, input_index] pairs")
    if len(edges) % 2:
        raise bad(f"'{cell}' has {len(edges)} edges; a DARTS cell needs exactly 2 per intermediate node")
    steps = len(edges) // 2
    ops = [p for p in PRIMITIVES if p != "none"]
    pairs: list[tuple[str, int]] = []
    for k, pair in enumerate(edges):
        node = k // 2  # intermediate node index (0-based); its inputs are 0 .. node+1
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise bad(f"'{cell}' edge {k} must be an [op, input_index] pair, got {pair!r}")
        op, idx = pair
        if op not in ops:
            raise bad(f"'{cell}' edge {k} has unknown op {op!r}; allowed: {', '.join(ops)}")
        if not _is_int(idx) or not 0 <= idx < node + 2:
            raise bad(f"'{cell}' edge {k} (node {node + 2}) has input {idx!r}; it must be an integer in 0..{node + 1}")
        pairs.append((op, idx))
    if not isinstance(concat, list) or not concat:
        raise bad(f"'{cell}_concat' must be a non-empty list of node indices")
    for i in concat:
        if not _is_int(i) or not 2 <= i < steps + 2:
            raise bad(f"'{cell}_concat' has {i!r}; node indices must be integers in 2..{steps + 1}")
    if len(set(concat)) != len(concat):
        raise bad(f"'{cell}_concat' repeats a node: {concat}")
    return pairs, list(concat)


def genotype_from_dict(d: Any, source: str = "<dict>") -> Genotype | NB201Genotype:
    """Validate and convert the JSON form back to a genotype.

    ``source`` (a file name) is named in every error.  Checks: the space is known; DARTS: the
    four keys and no others, every op a non-``none`` op of :data:`PRIMITIVES`, two edges per
    node, each input index valid for its node, concat indices valid and distinct; NB201: a
    well-formed architecture string.
    """
    if not isinstance(d, dict):
        raise UserError(f"genotype {source}: expected a JSON object, got {type(d).__name__}")
    space = d.get("space")
    if space == "nb201":
        extra = sorted(set(d) - {"space", "arch"})
        if extra:
            raise UserError(f"genotype {source}: unexpected keys {extra} for space 'nb201' (allowed: space, arch)")
        if "arch" not in d:
            raise UserError(f"genotype {source}: missing key 'arch' (the NAS-Bench-201 architecture string)")
        try:
            return NB201Genotype.from_arch_str(d["arch"])
        except UserError as exc:
            raise UserError(f"genotype {source}: {exc}") from None
    if space == "darts":
        missing = [k for k in _DARTS_KEYS if k not in d]
        if missing:
            raise UserError(f"genotype {source}: missing keys {missing} for space 'darts'")
        extra = sorted(set(d) - {"space", *_DARTS_KEYS})
        if extra:
            raise UserError(
                f"genotype {source}: unexpected keys {extra} for space 'darts' (allowed: space, {', '.join(_DARTS_KEYS)})"
            )
        normal, normal_concat = _check_cell(d["normal"], d["normal_concat"], "normal", source)
        reduce, reduce_concat = _check_cell(d["reduce"], d["reduce_concat"], "reduce", source)
        return Genotype(normal, normal_concat, reduce, reduce_concat)
    raise UserError(f"genotype {source}: unknown or missing 'space' {space!r}; expected 'darts' or 'nb201'")


def save_genotype(path: str | os.PathLike, g: Genotype | NB201Genotype) -> None:
    """Write ``g`` as JSON, atomically."""
    write_json(path, genotype_to_dict(g))


def load_genotype(name_or_path: str | os.PathLike) -> Genotype | NB201Genotype:
    """A shipped genotype by name (:data:`SHIPPED_GENOTYPES`) or a ``genotype.json`` file.

    A folder is accepted if it contains ``genotype.json`` (e.g. a search run folder).
    """
    key = str(name_or_path)
    if key in SHIPPED_GENOTYPES:
        return SHIPPED_GENOTYPES[key]
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "genotype.json"
    if not path.exists():
        raise UserError(
            f"genotype {key!r} is neither a shipped genotype ({', '.join(SHIPPED_GENOTYPES)}) "
            f"nor an existing genotype.json file; give one of those names or a path"
        )
    return genotype_from_dict(read_json(path, what="genotype file"), source=str(path))


def count_op(g: Genotype | NB201Genotype, op: str) -> int:
    """Number of edges carrying ``op`` (normal + reduction cell for DARTS, 6 edges for NB201)."""
    if isinstance(g, NB201Genotype):
        if op not in NB201_PRIMITIVES:
            raise ValueError(f"unknown NAS-Bench-201 op {op!r}")
        return sum(1 for o in g.ops if o == op)
    if isinstance(g, Genotype):
        if op not in PRIMITIVES:
            raise ValueError(f"unknown DARTS op {op!r}")
        return sum(1 for o, _ in list(g.normal) + list(g.reduce) if o == op)
    raise TypeError(f"not a genotype: {type(g).__name__}")
