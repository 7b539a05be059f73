"""The NAS-Bench-201 search space: candidate ops, search cell and supernet (paper §4.4, Table 4).

NAS-Bench-201's DARTS baseline (``TinyNetworkDarts`` of ``xautodl``), with exactly its parameters
(tested): 5 ops, 6 edges, one alpha matrix (6, 5) shared by all cells; the genotype is the argmax
per edge with ``none`` included.  Ops, BatchNorm choices and layout: docs/nb201.md, "Search space".
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...genotypes import NB201_EDGES, NB201_PRIMITIVES, NB201Genotype, derive_nb201_genotype
from ..darts.ops import Identity, Zero, mixed_op_sum
from ..supernet import Supernet

#: Nodes of the NAS-Bench-201 cell (node 0 is the cell input, node 3 its output).
NUM_NODES = 4


class NorConv(nn.Module):
    """NAS-Bench-201 ``ReLUConvBN``: ReLU -> Conv(k, stride, padding) -> BN.

    As in NAS-Bench-201, the convolution has a bias exactly when the BN is not affine
    (``bias = not affine``), and the BN's ``track_running_stats`` is a choice of the caller.
    Used for ``nor_conv_1x1`` / ``nor_conv_3x3``, the channel adapter of ``avg_pool_3x3`` and
    both convolutions of :class:`ResNetBasicBlock`.
    """

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=not affine),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class AvgPool(nn.Module):
    """NAS-Bench-201 ``avg_pool_3x3``: AvgPool2d(3, stride 1, padding 1, count_include_pad=False).

    When ``C_in != C_out`` the input first goes through a ReLU-Conv1x1-BN (:class:`NorConv`),
    as in NAS-Bench-201's ``POOLING``; with equal channels there is no preprocessing and no BN
    after the pooling (unlike the DARTS space's MixedOp).
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = False, track_running_stats: bool = True):
        super().__init__()
        self.preprocess = (
            NorConv(C_in, C_out, 1, 1, 0, affine=affine, track_running_stats=track_running_stats)
            if C_in != C_out
            else None
        )
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        return self.pool(x)


def _same_shape(name: str, C_in: int, C_out: int) -> None:
    if C_in != C_out:
        raise ValueError(
            f"NAS-Bench-201 op {name!r} keeps the channel count (got {C_in} -> {C_out}); "
            "channels change only in the ResNet blocks between stages"
        )


def _none(C_in: int, C_out: int, affine: bool, track: bool) -> nn.Module:
    _same_shape("none", C_in, C_out)
    return Zero(1)


def _skip(C_in: int, C_out: int, affine: bool, track: bool) -> nn.Module:
    _same_shape("skip_connect", C_in, C_out)
    return Identity()


OpBuilder = Callable[[int, int, bool, bool], nn.Module]

#: Builders ``(C_in, C_out, affine, track_running_stats) -> nn.Module`` of the NB201 ops, keyed
#: and ordered as :data:`~sd_darts.genotypes.NB201_PRIMITIVES`.  Cell ops have stride 1.
NB201_OPS: dict[str, OpBuilder] = {
    "none": _none,
    "skip_connect": _skip,
    "nor_conv_1x1": lambda C_in, C_out, affine, track: NorConv(C_in, C_out, 1, 1, 0, affine, track),
    "nor_conv_3x3": lambda C_in, C_out, affine, track: NorConv(C_in, C_out, 3, 1, 1, affine, track),
    "avg_pool_3x3": lambda C_in, C_out, affine, track: AvgPool(C_in, C_out, affine, track),
}

assert tuple(NB201_OPS) == NB201_PRIMITIVES, "NB201_OPS must cover NB201_PRIMITIVES in the same order"


class MixedEdge(nn.Module):
    """One edge ``i<-j`` of the search cell: ``sum_o w_o * o(x)`` over the 5 ops (DARTS Eq. 2)."""

    def __init__(self, C: int, affine: bool, track_running_stats: bool):
        super().__init__()
        self._ops = nn.ModuleList(NB201_OPS[p](C, C, affine, track_running_stats) for p in NB201_PRIMITIVES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: softmaxed alphas of this edge, shape (5,)."""
        return mixed_op_sum(self._ops, x, weights)


class NB201SearchCell(nn.Module):
    """The NAS-Bench-201 search cell: node ``i`` = sum of edges ``i<-j`` for ``j < i``.

    ``edges[k]`` is the :class:`MixedEdge` of :data:`~sd_darts.genotypes.NB201_EDGES` ``[k]``,
    so row ``k`` of the alphas drives it; the cell returns node 3.
    """

    def __init__(self, C: int, affine: bool = False, track_running_stats: bool = True):
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(C, affine, track_running_stats) for _ in NB201_EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: softmaxed alphas, shape (6, 5)."""
        nodes = [x]
        k = 0
        for to in range(1, NUM_NODES):
            s = None
            for frm in range(to):
                term = self.edges[k](nodes[frm], weights[k])
                s = term if s is None else s + term
                k += 1
            nodes.append(s)
        return nodes[-1]


class ResNetBasicBlock(nn.Module):
    """The reduction between NB201 stages: a ResNet basic block (He et al. 2016) of stride 2.

    ``conv_a`` = ReLU-Conv3x3(stride)-BN, ``conv_b`` = ReLU-Conv3x3-BN; the shortcut is
    AvgPool2d(2, 2) followed by a bias-free Conv1x1 when the stride is 2, a ReLU-Conv1x1-BN when
    only the channels change, and the identity otherwise.  BN is affine and tracks running
    statistics (NAS-Bench-201's defaults for these blocks, also in the DARTS baseline).
    """

    def __init__(self, C_in: int, C_out: int, stride: int = 2):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.conv_a = NorConv(C_in, C_out, 3, stride, 1, affine=True, track_running_stats=True)
        self.conv_b = NorConv(C_out, C_out, 3, 1, 1, affine=True, track_running_stats=True)
        if stride == 2:
            self.downsample: nn.Module | None = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                nn.Conv2d(C_in, C_out, 1, stride=1, padding=0, bias=False),
            )
        elif C_in != C_out:
            self.downsample = NorConv(C_in, C_out, 1, 1, 0, affine=True, track_running_stats=True)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


class NB201Supernet(Supernet):
    """The NAS-Bench-201 search supernet (``TinyNetworkDarts`` of the NB201 DARTS baseline).

    ``C`` initial channels, ``N`` search cells per stage (3 stages: C, 2C, 4C channels, 3N
    cells), two stride-2 ResNet basic blocks between the stages.  Follows the supernet contract
    of ``docs/ARCHITECTURE.md``: ``forward(x) -> logits``, ``arch_parameters()``,
    ``weights()``, ``named_weights()``, ``genotype()``.
    """

    def __init__(
        self,
        C: int,
        N: int,
        num_classes: int,
        affine: bool = False,
        track_running_stats: bool = True,
        in_channels: int = 3,
    ):
        super().__init__()
        if C < 1 or N < 1 or num_classes < 1:
            raise ValueError(f"C, N and num_classes must be positive, got {C}, {N}, {num_classes}")
        self.C = C
        self.N = N
        self.num_classes = num_classes
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.cells = nn.ModuleList()
        C_prev = C
        for stage in range(3):
            C_curr = C * 2**stage
            if stage > 0:
                self.cells.append(ResNetBasicBlock(C_prev, C_curr, stride=2))
            for _ in range(N):
                self.cells.append(NB201SearchCell(C_curr, affine, track_running_stats))
            C_prev = C_curr
        self.lastact = nn.Sequential(nn.BatchNorm2d(C_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        self.alphas = nn.Parameter(1e-3 * torch.randn(len(NB201_EDGES), len(NB201_PRIMITIVES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.alphas, dim=-1)
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h, weights) if isinstance(cell, NB201SearchCell) else cell(h)
        h = self.global_pooling(self.lastact(h))
        return self.classifier(h.flatten(1))

    # ---- supernet contract -------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """The alphas: ``[alphas]``, shape (6, 5)."""
        return [self.alphas]

    @torch.no_grad()
    def genotype(self) -> NB201Genotype:
        """Argmax per edge, ``none`` included (:func:`~sd_darts.genotypes.derive_nb201_genotype`)."""
        return derive_nb201_genotype(self.alphas)


__all__ = [
    "NB201_OPS",
    "NorConv",
    "AvgPool",
    "MixedEdge",
    "NB201SearchCell",
    "ResNetBasicBlock",
    "NB201Supernet",
]
