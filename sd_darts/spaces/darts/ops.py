"""Candidate operations of the DARTS search space (DARTS §3.1, quark0/darts ``operations.py``).

SD-DARTS uses them unchanged (paper §4.1).  Every builder in :data:`OPS` is
``(C, stride, affine) -> nn.Module``, C channels to C; nothing works in place, so the ops run
under ``torch.func.functional_call``.  Conventions: docs/spaces.md.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...genotypes import PRIMITIVES


class ReLUConvBN(nn.Module):
    """ReLU -> Conv(kernel_size, stride, padding) -> BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """ReLU -> depthwise conv (dilated) -> pointwise conv -> BN (DARTS ``dil_conv_kxk``)."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=C_in, bias=False
            ),
            nn.Conv2d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """Two stacked depthwise-separable convolutions (DARTS ``sep_conv_kxk``).

    ReLU -> dw conv(stride) -> pw conv -> BN -> ReLU -> dw conv(1) -> pw conv -> BN; only the
    first depthwise convolution carries the stride and the channel change happens in the last
    pointwise convolution.
    """

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            DilConv(C_in, C_in, kernel_size, stride, padding, dilation=1, affine=affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, dilation=1, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Identity(nn.Module):
    """``skip_connect`` with stride 1.  Evaluation networks never apply drop path to it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` operation: zeros with the output shape of a stride-``stride`` op.

    Returns fresh zeros rather than ``x * 0`` so that a non-finite input cannot leak through.
    """

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s = self.stride
        return x.new_zeros((n, c, -(-h // s), -(-w // s)))

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class FactorizedReduce(nn.Module):
    """Halve the spatial size with two stride-2 1x1 convolutions on offset grids (DARTS).

    ReLU, then conv1x1/2 on ``x`` and conv1x1/2 on ``x`` shifted by one pixel, concatenated on
    channels, then BN.  The shifted branch pads one zero row/column at the end, so odd sizes
    work too (both branches give ``ceil(H/2)``); for even sizes this equals DARTS' ``x[:, :, 1:, 1:]``.
    ``C_out`` may be odd: the second branch takes the extra channel.
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        c1 = C_out // 2
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, c1, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out - c1, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


OpBuilder = Callable[[int, int, bool], nn.Module]

#: Builders of the DARTS candidate operations, keyed by :data:`~sd_darts.genotypes.PRIMITIVES`.
OPS: dict[str, OpBuilder] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine=affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine=affine),
}

assert tuple(OPS) == PRIMITIVES, "OPS must cover PRIMITIVES in the same order"


def drop_path(x: torch.Tensor, drop_prob: float | torch.Tensor, training: bool = True) -> torch.Tensor:
    """Drop path (Larsson et al. 2017, as used by DARTS' evaluation networks).

    During training, zeroes the whole path for each sample with probability ``drop_prob`` and
    scales the kept samples by ``1 / (1 - drop_prob)``, so the expectation is unchanged.
    Out of place: returns a new tensor and never modifies ``x`` (DARTS' in-place version breaks
    autograd on recent PyTorch).  Identity when not training or ``drop_prob <= 0``.

    ``drop_prob`` may be a 0-dim tensor (a compiled or graph-captured training step changes it
    every epoch without recompiling): then the mask is always drawn, and a probability of 0
    gives a mask of ones.
    """
    if not training:
        return x
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    if isinstance(drop_prob, torch.Tensor):
        keep = (1.0 - drop_prob).to(x.dtype)
        mask = torch.bernoulli(keep.expand(shape))
        return x * (mask / keep)
    if drop_prob <= 0.0:
        return x
    if drop_prob >= 1.0:
        raise ValueError(f"drop_prob must be < 1, got {drop_prob}")
    keep = 1.0 - drop_prob
    mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * (mask / keep)


def mixed_op_sum(ops, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Σ_o w_o · o(x)``: the continuous relaxation of one edge (DARTS Eq. 2), shared by the
    MixedOps of every search space.  ``weights`` are the edge's softmaxed alphas."""
    out = None
    for w, op in zip(weights, ops):
        term = w * op(x)
        out = term if out is None else out + term
    return out
