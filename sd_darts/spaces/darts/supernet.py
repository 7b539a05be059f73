"""The DARTS search space: MixedOp, search cell and supernet (DARTS §2.1-2.2, paper §4.1).

quark0/darts ``model_search.py``, searched unchanged: 8 ops, 8 cells, C = 16, alphas (14, 8)
shared by the cells of one kind.  Non-affine BatchNorm keeps candidate outputs on one scale;
nothing works in place, so ``functional_call`` can swap weights or alphas (docs/spaces.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...genotypes import PRIMITIVES, Genotype, derive_genotype
from ..supernet import Supernet
from .ops import OPS, FactorizedReduce, ReLUConvBN, mixed_op_sum


class MixedOp(nn.Module):
    """One edge of the search cell: ``sum_o w_o * o(x)`` over the candidate ops (DARTS Eq. 2);
    by default all of :data:`PRIMITIVES`, in that order."""

    def __init__(self, C: int, stride: int, primitives: Sequence[str] = PRIMITIVES):
        super().__init__()
        self._ops = nn.ModuleList()
        for primitive in primitives:
            op = OPS[primitive](C, stride, False)
            if "pool" in primitive:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            self._ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: the softmaxed alphas of this edge, shape (len(PRIMITIVES),)."""
        return mixed_op_sum(self._ops, x, weights)


class SearchCell(nn.Module):
    """DARTS search cell: 2 inputs, ``steps`` intermediate nodes, all-to-later MixedOps.

    Input 0 (``c_{k-2}``) is preprocessed by :class:`FactorizedReduce` when the previous cell
    was a reduction cell (so both inputs have the same size), otherwise by ReLU-Conv1x1-BN;
    input 1 (``c_{k-1}``) by ReLU-Conv1x1-BN.  In a reduction cell the edges leaving the two
    inputs have stride 2.  Edge order (alpha rows): node 0 from inputs 0, 1; node 1 from
    inputs 0, 1, 2; node 2 from 0..3; node 3 from 0..4 (14 edges for 4 nodes).
    """

    def __init__(
        self,
        steps: int,
        multiplier: int,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        primitives: Sequence[str] = PRIMITIVES,
    ):
        super().__init__()
        self.reduction = reduction
        self.steps = steps
        self.multiplier = multiplier
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self._ops = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self._ops.append(MixedOp(C, stride, primitives))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: softmaxed alphas of this cell type, shape (num_edges, len(PRIMITIVES))."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            s = None
            for j, h in enumerate(states):
                term = self._ops[offset + j](h, weights[offset + j])
                s = term if s is None else s + term
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.multiplier :], dim=1)


def check_primitives(primitives: Sequence[str]) -> tuple[str, ...]:
    """The ops of a supernet's edges: distinct DARTS ops, at least one besides ``none``."""
    unknown = [p for p in primitives if p not in PRIMITIVES]
    if unknown or len(set(primitives)) != len(primitives) or not [p for p in primitives if p != "none"]:
        raise ValueError(
            f"primitives must be distinct DARTS ops with at least one besides none, got {list(primitives)}"
        )
    return tuple(primitives)


def num_edges(steps: int) -> int:
    """Edges of a DARTS cell with ``steps`` intermediate nodes (14 for 4)."""
    return sum(2 + i for i in range(steps))


class DartsSupernet(Supernet):
    """The DARTS search supernet (``Network`` in quark0/darts ``model_search.py``).

    Stem: conv3x3 to ``stem_multiplier * C`` channels + BN.  ``layers`` cells; cells
    ``layers // 3`` and ``2 * layers // 3`` are reduction cells and double the channels.
    Global average pooling and a linear classifier.  Follows the supernet contract of
    ``docs/ARCHITECTURE.md``.
    """

    def __init__(
        self,
        C: int,
        num_classes: int,
        layers: int,
        steps: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
        in_channels: int = 3,
        primitives: Sequence[str] = PRIMITIVES,
    ):
        super().__init__()
        self.primitives = check_primitives(primitives)
        if C < 1 or layers < 1 or num_classes < 1:
            raise ValueError(f"C, layers and num_classes must be positive, got {C}, {layers}, {num_classes}")
        if not 1 <= multiplier <= steps:
            raise ValueError(f"multiplier must be in 1..steps={steps}, got {multiplier}")
        self.C = C
        self.num_classes = num_classes
        self.layers = layers
        self.steps = steps
        self.multiplier = multiplier

        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_curr),
        )
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.reduction_layers = (layers // 3, 2 * layers // 3)
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in self.reduction_layers
            if reduction:
                C_curr *= 2
            cell = SearchCell(
                steps, multiplier, C_prev_prev, C_prev, C_curr, reduction, reduction_prev, self.primitives
            )
            reduction_prev = reduction
            self.cells.append(cell)
            C_prev_prev, C_prev = C_prev, multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

        shape = (num_edges(steps), len(self.primitives))
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(shape))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights_normal = F.softmax(self.alphas_normal, dim=-1)
        weights_reduce = F.softmax(self.alphas_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            weights = weights_reduce if cell.reduction else weights_normal
            s0, s1 = s1, cell(s0, s1, weights)
        out = self.global_pooling(s1)
        return self.classifier(out.flatten(1))

    # ---- supernet contract -------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """The alphas: ``[alphas_normal, alphas_reduce]``."""
        return [self.alphas_normal, self.alphas_reduce]

    @torch.no_grad()
    def genotype(self) -> Genotype:
        """Discrete genotype of the current alphas by the DARTS rule (:func:`derive_genotype`)."""
        return derive_genotype(
            F.softmax(self.alphas_normal, dim=-1),
            F.softmax(self.alphas_reduce, dim=-1),
            steps=self.steps,
            multiplier=self.multiplier,
            primitives=self.primitives,
        )


__all__ = ["MixedOp", "SearchCell", "DartsSupernet", "num_edges"]
