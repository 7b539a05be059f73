"""What the fused supernets share: the reference's BatchNorm settings and the channels_last
layout, in which an (N, C, H, W) tensor is an (N, H, W, C) contiguous one seen through a
permutation (docs/speed.md)."""

from __future__ import annotations

import torch

BN_MOMENTUM = 0.1  # nn.BatchNorm2d's defaults, as in the reference
BN_EPS = 1e-5
CL = torch.channels_last


def to_nhwc(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) channels_last -> its (N, H, W, C) contiguous view."""
    return t.permute(0, 2, 3, 1)


def to_nchw(t: torch.Tensor) -> torch.Tensor:
    """(N, H, W, C) contiguous -> the (N, C, H, W) channels_last view that convolutions take."""
    return t.permute(0, 3, 1, 2)


__all__ = ["BN_EPS", "BN_MOMENTUM", "CL", "to_nchw", "to_nhwc"]
