"""The fused DARTS search cell of :mod:`sd_darts.spaces.darts.fused`: a :class:`FusedCell` is
``steps`` :class:`FusedRound` s, one per node with outgoing edges, each computing every op type
once for all the round's edges (grouped convolutions, one BatchNorm call with the edge weights
as scales, channels_last), optionally for S stacked seeds; and where each reference tensor sits
in theirs (``reference_slots``: :func:`seed_slot` views, :func:`embed_kernel` union kernels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..channels_last import BN_EPS, BN_MOMENTUM, CL, to_nchw, to_nhwc
from .supernet import num_edges

#: The separable and the dilated conv ops: the first depthwise convolutions of each family run
#: as one 5x5 kernel (dilation 1 and 2), the 3x3 kernels embedded in the middle of a 5x5 one.
SEP_OPS = ("sep_conv_3x3", "sep_conv_5x5")
DIL_OPS = ("dil_conv_3x3", "dil_conv_5x5")
#: Order of the conv ops inside a round: separable first (they have a second stage).
CONV_ORDER = SEP_OPS + DIL_OPS
POOL_OPS = ("max_pool_3x3", "avg_pool_3x3")


def _tap_mask(op: str) -> torch.Tensor:
    """Where the kernel of ``op`` sits in its 5x5 union kernel (1 = a real tap)."""
    m = torch.zeros(5, 5)
    if op.endswith("3x3"):
        m[1:4, 1:4] = 1
    else:
        m[:, :] = 1
    return m


#: 5x5 tap masks of the conv ops.
TAP_MASKS = {op: _tap_mask(op) for op in CONV_ORDER}


def embed_kernel(op: str, kernel: torch.Tensor) -> torch.Tensor:
    """A reference depthwise kernel (C, 1, k, k) placed in the 5x5 union kernel (C, 5, 5)."""
    k = kernel[:, 0]
    out = kernel.new_zeros(k.shape[0], 5, 5)
    if op.endswith("3x3"):
        out[:, 1:4, 1:4] = k
    else:
        out[:, :, :] = k
    return out


def extract_kernel(op: str, union: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`embed_kernel`: (C, 5, 5) -> (C, 1, k, k)."""
    k = union[:, 1:4, 1:4] if op.endswith("3x3") else union
    return k.unsqueeze(1).clone()


def _mask_hook(module: nn.Module, mask_name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    def hook(grad: torch.Tensor) -> torch.Tensor:
        return grad * getattr(module, mask_name)

    return hook


def _ceil_half(n: int) -> int:
    return -(-n // 2)


SEED = object()  # placeholder for the seed index in a slot's index tuple


def seed_slot(shape: tuple[int, ...], *index) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """``view(t, s)`` = ``t.view(shape)[index]`` with :data:`SEED` replaced by ``s``."""

    def view(t: torch.Tensor, s: int) -> torch.Tensor:
        return t.view(shape)[tuple(s if i is SEED else i for i in index)]

    return view


class FusedRound(nn.Module):
    """All the edges that leave the same node(s) of a search cell, one call per op type.

    ``num_sources`` cell states (Src: 2 for round 0, 1 otherwise), each with the same
    ``num_out`` (E) outgoing edges to consecutive nodes; ``stride`` 2 only for the edges that
    leave the inputs of a reduction cell.  ``edge_rows[j, e]`` is the alpha row of the edge from
    source ``j`` to its ``e``-th destination.  Input (N, Src·S·C, H, W) channels_last, channels
    ordered (source, seed, c); output (E, N, H', W', S·C): for every outgoing edge and seed, the
    edge's mixed op summed over the sources (the round's contribution to each destination node).
    """

    def __init__(
        self,
        C: int,
        num_sources: int,
        num_out: int,
        stride: int,
        edge_rows: torch.Tensor,
        primitives: Sequence[str],
        num_seeds: int,
    ):
        super().__init__()
        S, Src, E = num_seeds, num_sources, num_out
        self.C, self.Src, self.E, self.stride, self.S = C, Src, E, stride, S
        prims = tuple(primitives)
        self.primitives = prims
        self.conv_ops = tuple(op for op in CONV_ORDER if op in prims)
        self.sep_ops = tuple(op for op in SEP_OPS if op in prims)
        self.dil_ops = tuple(op for op in DIL_OPS if op in prims)
        self.pool_ops = tuple(op for op in POOL_OPS if op in prims)
        self.identity = "skip_connect" in prims and stride == 1
        self.reduce_skip = "skip_connect" in prims and stride == 2
        self.pf_ops = self.pool_ops + (("skip_connect",) if self.identity else ())
        self.register_buffer("edge_rows", edge_rows.clone(), persistent=False)
        #: parameter name -> (before, S, after): the view that puts the seed on axis 1.
        self.seed_axes: dict[str, tuple[int, int, int]] = {}
        # This module's own masked kernels (a plain dict: functional_call does not swap it), to
        # tell them from replacements.
        self._own: dict[str, nn.Parameter] = {}
        NC, n_sep = len(self.conv_ops), len(self.sep_ops)
        for fam, ops in (("sep", self.sep_ops), ("dil", self.dil_ops)):
            if not ops:
                continue
            n = len(ops)
            # first depthwise kernels of the family, channels (source, seed, c, op, edge)
            w = self._param(f"dw_{fam}", (Src * S * C * n * E, 1, 5, 5), Src)
            mask = torch.stack([TAP_MASKS[op] for op in ops]).view(1, 1, 1, n, 1, 5, 5)
            self.register_buffer(
                f"dw_{fam}_mask", mask.expand(Src, S, C, n, E, 5, 5).reshape(-1, 1, 5, 5).clone(), False
            )
            w.register_hook(_mask_hook(self, f"dw_{fam}_mask"))
            setattr(self, f"dw_{fam}", w)
            self._own[f"dw_{fam}"] = w
            # pointwise convolutions, groups (op, edge, source, seed)
            setattr(self, f"pw_{fam}", self._param(f"pw_{fam}", (n * E * Src * S * C, C, 1, 1), n * E * Src))
        if NC:
            self.register_buffer("bn2_mean", torch.zeros(NC * E * Src * S * C))
            self.register_buffer("bn2_var", torch.ones(NC * E * Src * S * C))
        if n_sep:
            self.register_buffer("bn1_mean", torch.zeros(n_sep * E * Src * S * C))
            self.register_buffer("bn1_var", torch.ones(n_sep * E * Src * S * C))
            self.dw2 = self._param("dw2", (n_sep * E * Src * S * C, 1, 5, 5), n_sep * E * Src)
            mask2 = torch.stack([TAP_MASKS[op] for op in self.sep_ops]).view(n_sep, 1, 1, 1, 1, 5, 5)
            mask2 = mask2.expand(n_sep, E, Src, S, C, 5, 5).reshape(-1, 1, 5, 5).clone()
            self.register_buffer("dw2_mask", mask2, persistent=False)
            self.dw2.register_hook(_mask_hook(self, "dw2_mask"))
            self._own["dw2"] = self.dw2
            self.pw2 = self._param("pw2", (n_sep * E * Src * S * C, C, 1, 1), n_sep * E * Src)
        for op in self.pool_ops:
            self.register_buffer(f"{op}_mean", torch.zeros(Src * S * C))
            self.register_buffer(f"{op}_var", torch.ones(Src * S * C))
        if self.reduce_skip:
            c1 = C // 2
            self.fr1 = self._param("fr1", (Src * S * E * c1, C, 1, 1), Src)
            self.fr2 = self._param("fr2", (Src * S * E * (C - c1), C, 1, 1), Src)
            self.register_buffer("fr_mean", torch.zeros(E * Src * S * C))
            self.register_buffer("fr_var", torch.ones(E * Src * S * C))

    def _param(self, name: str, shape: tuple[int, ...], before: int) -> nn.Parameter:
        """A parameter whose storage is (before, S, after): seed ``s``'s copy is ``[:, s]``."""
        numel = 1
        for n in shape:
            numel *= n
        self.seed_axes[name] = (before, self.S, numel // (before * self.S))
        return nn.Parameter(torch.zeros(shape))

    # ---- edge weights ------------------------------------------------------------------
    def weight_index(self, n_edges: int) -> list[tuple[str, torch.Tensor]]:
        """Where this round's edge weights sit in the flattened softmax of the alphas
        (S·n_edges·n_prims values): ``[(name, flat index)]`` for the BN scale of the conv ops
        (``bn2``, channel order (op, edge, source, seed, c)), the matrix of the parameter-free ops
        (``pf``, (S, E, P·Src)) and the BN scale of the stride-2 skip (``fr``)."""
        S, Src, E, C = self.S, self.Src, self.E, self.C
        col = {p: i for i, p in enumerate(self.primitives)}
        n_prims = len(self.primitives)
        seeds = torch.arange(S).view(S, 1, 1)
        base = (seeds * n_edges + self.edge_rows.t().reshape(1, E, Src)) * n_prims  # (S, E, Src)
        out = []
        if self.conv_ops:
            cols = torch.tensor([col[op] for op in self.conv_ops]).view(-1, 1, 1, 1)
            idx = base.permute(1, 2, 0).unsqueeze(0) + cols  # (NC, E, Src, S)
            out.append(("bn2", idx.unsqueeze(-1).expand(-1, -1, -1, -1, C).reshape(-1)))
        if self.pf_ops:
            cols = torch.tensor([col[op] for op in self.pf_ops]).view(1, 1, -1, 1)
            idx = base.unsqueeze(2) + cols  # (S, E, P, Src)
            out.append(("pf", idx.reshape(-1)))
        if self.reduce_skip:
            idx = base.permute(1, 2, 0) + col["skip_connect"]  # (E, Src, S)
            out.append(("fr", idx.unsqueeze(-1).expand(-1, -1, -1, C).reshape(-1)))
        return out

    # ---- forward -----------------------------------------------------------------------
    def _weight(self, name: str) -> torch.Tensor:
        """A union kernel.  The parameter is kept exactly zero on the masked taps by a gradient
        hook; a replacement (``torch.func.functional_call``, e.g. the second-order architect's
        unrolled weights) is masked here."""
        w = getattr(self, name)
        if w is not self._own[name]:
            w = w * getattr(self, name + "_mask")
        return w

    def forward(self, x: torch.Tensor, w: dict[str, torch.Tensor], x_nhwc: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (N, Src·S·C, H, W) channels_last (``x_nhwc``: its (N, H, W, Src·S·C) view, when
        at hand); ``w`` the round's edge weights (:meth:`weight_index`).  Returns
        (E, N, H', W', S·C), edge-major: the round's part of each destination node, channels
        last within an edge."""
        N, _, H, W = x.shape
        S, Src, E, C, st = self.S, self.Src, self.E, self.C, self.stride
        Ho, Wo = (H, W) if st == 1 else (_ceil_half(H), _ceil_half(W))
        training = self.training
        parts = []
        if self.conv_ops or self.reduce_skip:
            r = F.relu(x)
        if self.conv_ops:
            finals = []
            for fam, ops in (("sep", self.sep_ops), ("dil", self.dil_ops)):
                if not ops:
                    continue
                n = len(ops)
                pad, dil = (2, 1) if fam == "sep" else (4, 2)
                h = F.conv2d(r, self._weight(f"dw_{fam}"), stride=st, padding=pad, dilation=dil, groups=Src * S * C)
                # channels (source, seed, c, op, edge) -> (op, edge, source, seed, c): the groups of
                # the pointwise convolution
                h = F.channel_shuffle(h, Src * S * C)
                h = F.conv2d(h, getattr(self, f"pw_{fam}"), groups=n * E * Src * S)
                if fam == "sep":
                    h = F.batch_norm(h, self.bn1_mean, self.bn1_var, None, None, training, BN_MOMENTUM, BN_EPS)
                    h = F.conv2d(F.relu(h), self._weight("dw2"), padding=2, groups=n * E * Src * S * C)
                    h = F.conv2d(h, self.pw2, groups=n * E * Src * S)
                finals.append(h)
            h = torch.cat(finals, 1) if len(finals) > 1 else finals[0]
            h = F.batch_norm(h, self.bn2_mean, self.bn2_var, w["bn2"], None, training, BN_MOMENTUM, BN_EPS)
            NC = len(self.conv_ops)
            if Src == 1:
                h = to_nhwc(h).reshape(N, Ho, Wo, NC, E, S * C).sum(3)
            else:  # two one-dim sums: a reduction over two non-adjacent dims is ~5x slower on CPU
                h = to_nhwc(h).reshape(N, Ho, Wo, NC, E, Src, S * C).sum(5).sum(3)
            parts.append(h.permute(3, 0, 1, 2, 4))
        if self.pf_ops:
            pf = []
            for op in self.pool_ops:
                if op == "max_pool_3x3":
                    p = F.max_pool2d(x, 3, st, 1)
                else:
                    p = F.avg_pool2d(x, 3, st, 1, count_include_pad=False)
                p = F.batch_norm(
                    p,
                    getattr(self, f"{op}_mean"),
                    getattr(self, f"{op}_var"),
                    None,
                    None,
                    training,
                    BN_MOMENTUM,
                    BN_EPS,
                )
                pf.append(p)
            K = len(self.pf_ops) * Src
            if S == 1:
                # the weighted sum over (op, source) of every edge: one matrix product on the
                # stacked (op, source) planes in NHWC order, giving the edge-major layout
                pf = [to_nhwc(t) for t in pf]
                if self.identity:
                    pf.append(to_nhwc(x) if x_nhwc is None else x_nhwc)
                if Src > 1:
                    pf = [t.view(N, Ho, Wo, Src, C).permute(3, 0, 1, 2, 4) for t in pf]
                q = torch.stack(pf, 0).view(K, -1)
                o = torch.mm(w["pf"].view(E, K), q).view(E, N, Ho, Wo, C)
            else:
                # the same per seed: seed-major planes, one batched matrix product
                if self.identity:
                    pf.append(x)
                q = to_nhwc(torch.cat(pf, 1)).reshape(N, Ho * Wo, K, S, C).permute(3, 2, 0, 1, 4).reshape(S, K, -1)
                o = torch.bmm(w["pf"].view(S, E, K), q).view(S, E, N, Ho, Wo, C).permute(1, 2, 3, 4, 0, 5)
                o = o.reshape(E, N, Ho, Wo, S * C)
            parts.insert(0, o)  # first: with one seed, the sum takes its edge-major layout
        if self.reduce_skip:
            c1 = C // 2
            a = F.conv2d(r, self.fr1, stride=2, groups=Src * S)
            b = F.conv2d(F.pad(r, (-1, 1, -1, 1)).contiguous(memory_format=CL), self.fr2, stride=2, groups=Src * S)
            f = torch.cat(
                [
                    to_nhwc(a).reshape(N, Ho, Wo, Src, S, E, c1).permute(0, 1, 2, 5, 3, 4, 6),
                    to_nhwc(b).reshape(N, Ho, Wo, Src, S, E, C - c1).permute(0, 1, 2, 5, 3, 4, 6),
                ],
                6,
            )  # (N, H', W', E, Src, S, C)
            f = F.batch_norm(
                to_nchw(f.view(N, Ho, Wo, -1)), self.fr_mean, self.fr_var, w["fr"], None, training, BN_MOMENTUM, BN_EPS
            )
            parts.append(to_nhwc(f).reshape(N, Ho, Wo, E, Src, S * C).sum(4).permute(3, 0, 1, 2, 4))
        out = parts[0]
        for part in parts[1:]:
            out = out + part
        return out

    # ---- reference layout ----------------------------------------------------------------
    def reference_slots(self, ref_prefix: str, prefix: str, col: dict[str, int]):
        """``(reference name, fused name, view(t, seed), kind)`` for every tensor of this round."""
        S, Src, E, C = self.S, self.Src, self.E, self.C
        NC, n_sep, n_dil = len(self.conv_ops), len(self.sep_ops), len(self.dil_ops)
        for j in range(Src):
            for e in range(E):
                ep = f"{ref_prefix}_ops.{int(self.edge_rows[j, e])}._ops."
                for fam, ops in (("sep", self.sep_ops), ("dil", self.dil_ops)):
                    for u, op in enumerate(ops):
                        ref = f"{ep}{col[op]}.op.0.op.1.weight" if fam == "sep" else f"{ep}{col[op]}.op.1.weight"
                        shape = (Src, S, C, len(ops), E, 5, 5)
                        yield ref, prefix + f"dw_{fam}", seed_slot(shape, j, SEED, slice(None), u, e), op
                for o, op in enumerate(self.conv_ops):
                    sep = op in SEP_OPS
                    first = f"{ep}{col[op]}.op.0.op." if sep else f"{ep}{col[op]}.op."
                    last = f"{ep}{col[op]}.op.1.op." if sep else first
                    fam, k, n = ("sep", o, n_sep) if sep else ("dil", o - n_sep, n_dil)
                    pw = seed_slot((n, E, Src, S, C, C, 1, 1), k, e, j, SEED)
                    yield first + "2.weight", prefix + f"pw_{fam}", pw, None
                    for stat, name in (("running_mean", "bn2_mean"), ("running_var", "bn2_var")):
                        yield last + "3." + stat, prefix + name, seed_slot((NC, E, Src, S, C), o, e, j, SEED), None
                for o, op in enumerate(self.sep_ops):
                    first, second = f"{ep}{col[op]}.op.0.op.", f"{ep}{col[op]}.op.1.op."
                    for stat, name in (("running_mean", "bn1_mean"), ("running_var", "bn1_var")):
                        yield first + "3." + stat, prefix + name, seed_slot((n_sep, E, Src, S, C), o, e, j, SEED), None
                    yield second + "1.weight", prefix + "dw2", seed_slot((n_sep, E, Src, S, C, 5, 5), o, e, j, SEED), op
                    yield (
                        second + "2.weight",
                        prefix + "pw2",
                        seed_slot((n_sep, E, Src, S, C, C, 1, 1), o, e, j, SEED),
                        None,
                    )
                for op in self.pool_ops:
                    for stat, suffix in (("running_mean", "_mean"), ("running_var", "_var")):
                        yield f"{ep}{col[op]}.1.{stat}", prefix + op + suffix, seed_slot((Src, S, C), j, SEED), "shared"
                if self.reduce_skip:
                    k, c1 = col["skip_connect"], C // 2
                    yield (
                        f"{ep}{k}.conv_1.weight",
                        prefix + "fr1",
                        seed_slot((Src, S, E, c1, C, 1, 1), j, SEED, e),
                        None,
                    )
                    yield (
                        f"{ep}{k}.conv_2.weight",
                        prefix + "fr2",
                        seed_slot((Src, S, E, C - c1, C, 1, 1), j, SEED, e),
                        None,
                    )
                    for stat, name in (("running_mean", "fr_mean"), ("running_var", "fr_var")):
                        yield f"{ep}{k}.bn.{stat}", prefix + name, seed_slot((E, Src, S, C), e, j, SEED), None


class FusedCell(nn.Module):
    """A DARTS search cell (the topology of :class:`~sd_darts.spaces.darts.SearchCell`) as
    ``steps`` :class:`FusedRound` s; both input preprocessings share one BN call."""

    def __init__(self, steps, multiplier, C_prev_prev, C_prev, C, reduction, reduction_prev, primitives, num_seeds):
        super().__init__()
        S = num_seeds
        self.S, self.C, self.steps, self.multiplier = S, C, steps, multiplier
        self.reduction, self.reduction_prev = reduction, reduction_prev
        self.seed_axes: dict[str, tuple[int, int, int]] = {}
        if reduction_prev:
            c1 = C // 2
            self.pre0a = self._param("pre0a", (S * c1, C_prev_prev, 1, 1))
            self.pre0b = self._param("pre0b", (S * (C - c1), C_prev_prev, 1, 1))
        else:
            self.pre0 = self._param("pre0", (S * C, C_prev_prev, 1, 1))
        self.pre1 = self._param("pre1", (S * C, C_prev, 1, 1))
        self.register_buffer("pre_mean", torch.zeros(2 * S * C))
        self.register_buffer("pre_var", torch.ones(2 * S * C))
        self.rounds = nn.ModuleList()
        first_row = [sum(2 + k for k in range(i)) for i in range(steps)]  # alpha row of (node i, input 0)
        for r in range(steps):
            sources = (0, 1) if r == 0 else (r + 1,)
            rows = torch.tensor([[first_row[i] + j for i in range(r, steps)] for j in sources])
            stride = 2 if reduction and r == 0 else 1
            self.rounds.append(FusedRound(C, len(sources), steps - r, stride, rows, primitives, S))
        n_e = num_edges(steps)
        index, self._split = [], []  # the cell's edge weights: one gather, then split per round
        for rnd in self.rounds:
            parts = rnd.weight_index(n_e)
            self._split.append([name for name, _ in parts])
            index.extend(idx for _, idx in parts)
        self._sizes = [int(i.numel()) for i in index]
        self.register_buffer(
            "weight_index", torch.cat(index) if index else torch.zeros(0, dtype=torch.long), persistent=False
        )

    def _param(self, name: str, shape: tuple[int, ...]) -> nn.Parameter:
        numel = 1
        for n in shape:
            numel *= n
        self.seed_axes[name] = (1, self.S, numel // self.S)
        return nn.Parameter(torch.zeros(shape))

    def round_weights(self, weights: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """The edge weights of every round, gathered from the flattened softmax of the alphas in
        one call."""
        chunks = iter(weights.index_select(0, self.weight_index).split(self._sizes))
        return [{name: next(chunks) for name in names} for names in self._split]

    def forward(self, r0: torch.Tensor, r1: torch.Tensor, weights: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """``r0``/``r1``: the ReLUs of the two cell inputs (computed once per tensor and shared
        with the other cell that reads it), channels_last; ``weights``: :meth:`round_weights`.
        Returns the cell output (N, S·multiplier·C, H, W), channels_last."""
        S, C = self.S, self.C
        N, _, H, W = r1.shape
        p1 = F.conv2d(r1, self.pre1, groups=S)
        if self.reduction_prev:
            a = F.conv2d(r0, self.pre0a, stride=2, groups=S)
            b = F.conv2d(F.pad(r0, (-1, 1, -1, 1)).contiguous(memory_format=CL), self.pre0b, stride=2, groups=S)
            if S == 1:
                x = torch.cat([a, b, p1], 1)
            else:  # (source, seed, c) with source 0 = the two halves of the factorized reduce
                fr = torch.cat([to_nhwc(a).reshape(N, H, W, S, -1), to_nhwc(b).reshape(N, H, W, S, -1)], 4)
                x = to_nchw(torch.cat([fr.view(N, H, W, S * C), to_nhwc(p1)], 3))
        else:
            x = torch.cat([F.conv2d(r0, self.pre0, groups=S), p1], 1)
        x = F.batch_norm(x, self.pre_mean, self.pre_var, None, None, self.training, BN_MOMENTUM, BN_EPS)
        nodes, rest, x_nhwc = [], None, None
        for r, rnd in enumerate(self.rounds):
            acc = rnd(x, weights[r], x_nhwc)  # (E, N, H', W', S·C): the round's part of nodes r, r+1, ...
            if rest is not None:
                acc = rest + acc
            if r == 0 and rnd.stride == 2:
                H, W = _ceil_half(H), _ceil_half(W)
            if r + 1 < self.steps:
                node, rest = acc.split([1, rnd.E - 1], 0)  # node r is complete
            else:
                node = acc
            node = node.reshape(N, H, W, S * C)
            nodes.append(node)
            if r + 1 < self.steps:
                x, x_nhwc = to_nchw(node), node
        kept = nodes[-self.multiplier :]
        if S == 1:
            out = torch.cat(kept, 3) if len(kept) > 1 else kept[0]
        else:  # channels (seed, node, c): every seed's block stays contiguous
            out = torch.stack([n.view(N, H, W, S, C) for n in kept], 4).view(N, H, W, -1)
        return to_nchw(out)

    def reference_slots(self, ref_prefix: str, prefix: str, col: dict[str, int]):
        S, C = self.S, self.C
        if self.reduction_prev:
            c1 = C // 2
            yield ref_prefix + "preprocess0.conv_1.weight", prefix + "pre0a", seed_slot((S, c1, -1, 1, 1), SEED), None
            yield (
                ref_prefix + "preprocess0.conv_2.weight",
                prefix + "pre0b",
                seed_slot((S, C - c1, -1, 1, 1), SEED),
                None,
            )
            bn0 = "preprocess0.bn."
        else:
            yield ref_prefix + "preprocess0.op.1.weight", prefix + "pre0", seed_slot((S, C, -1, 1, 1), SEED), None
            bn0 = "preprocess0.op.2."
        yield ref_prefix + "preprocess1.op.1.weight", prefix + "pre1", seed_slot((S, C, -1, 1, 1), SEED), None
        for src, bn in ((0, bn0), (1, "preprocess1.op.2.")):
            for stat, name in (("running_mean", "pre_mean"), ("running_var", "pre_var")):
                yield ref_prefix + bn + stat, prefix + name, seed_slot((2, S, C), src, SEED), None
        for r, rnd in enumerate(self.rounds):
            yield from rnd.reference_slots(ref_prefix, f"{prefix}rounds.{r}.", col)


__all__ = [
    "CONV_ORDER",
    "SEED",
    "TAP_MASKS",
    "FusedCell",
    "FusedRound",
    "embed_kernel",
    "extract_kernel",
    "seed_slot",
]
