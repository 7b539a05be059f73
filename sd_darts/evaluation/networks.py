"""Evaluation networks built from a searched genotype (paper §4.2 CIFAR-10, §4.3 ImageNet).

DARTS's macro structure (quark0/darts ``model.py``), which the paper keeps: stems, cells,
auxiliary head and drop path are described in docs/evaluation.md, "Networks".
``forward`` returns ``(logits, logits_aux)``; ``logits_aux`` is ``None`` outside training.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..genotypes import Genotype
from ..spaces.darts.ops import OPS, FactorizedReduce, Identity, ReLUConvBN, drop_path


class Cell(nn.Module):
    """One normal or reduction cell of an evaluation network, compiled from a genotype."""

    def __init__(
        self, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool
    ):
        super().__init__()
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=True)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=True)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=True)
        edges = genotype.reduce if reduction else genotype.normal
        concat = genotype.reduce_concat if reduction else genotype.normal_concat
        if len(edges) % 2:
            raise ValueError(f"a DARTS cell needs two edges per node, got {len(edges)} edges")
        self.reduction = reduction
        self._steps = len(edges) // 2
        self._concat = [int(i) for i in concat]
        self._indices = [int(index) for _name, index in edges]
        self.multiplier = len(self._concat)
        self._ops = nn.ModuleList()
        for name, index in edges:
            stride = 2 if reduction and index < 2 else 1
            self._ops.append(OPS[name](C, stride, True))
        # Which ops are identities (skip_connect at stride 1): drop path never touches them.
        self._is_identity = [isinstance(op, Identity) for op in self._ops]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float | torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        use_drop = self.training and (isinstance(drop_prob, torch.Tensor) or drop_prob > 0.0)
        for i in range(self._steps):
            node = None
            for k in (2 * i, 2 * i + 1):
                h = self._ops[k](states[self._indices[k]])
                if use_drop and not self._is_identity[k]:
                    h = drop_path(h, drop_prob)
                node = h if node is None else node + h
            states.append(node)
        return torch.cat([states[i] for i in self._concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS auxiliary classifier for 8×8 maps: ReLU, AvgPool(5, s3), 1×1 conv→128, BN,
    ReLU, 2×2 conv→768, BN, ReLU, linear."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.flatten(1))


class AuxiliaryHeadImageNet(nn.Module):
    """DARTS auxiliary classifier for 7×7 maps: ReLU, AvgPool(5, s2), 1×1 conv→128, BN,
    ReLU, 2×2 conv→768, ReLU, linear (no BN after the 2×2 conv, as in DARTS)."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.flatten(1))


def reduction_layers(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells: 1/3 and 2/3 of the depth (DARTS)."""
    return layers // 3, 2 * layers // 3


def _halve(size: int, times: int) -> int:
    """Spatial size after ``times`` stride-2 stages (every stride-2 op here gives ceil(s/2))."""
    for _ in range(times):
        size = -(-size // 2)
    return size


def auxiliary_input_ok(network: str, image_size: int) -> bool:
    """Whether the DARTS auxiliary head of ``network`` ('cifar' or 'imagenet') accepts inputs
    of ``image_size`` pixels.

    The heads end in a 2×2 convolution feeding ``Linear(768, …)``, so their pooling must leave
    exactly 2×2 maps: 8–10 px maps for the CIFAR head (AvgPool 5, stride 3; it sees the input
    after two reductions), 7–8 px for the ImageNet head (AvgPool 5, stride 2; after three
    stride-2 stems and two reductions).
    """
    if network == "cifar":
        m, stride = _halve(image_size, 2), 3
    elif network == "imagenet":
        m, stride = _halve(image_size, 5), 2
    else:
        raise ValueError(f"unknown network {network!r}; use 'cifar' or 'imagenet'")
    return m >= 5 and (m - 5) // stride + 1 == 2


def _check_args(C: int, num_classes: int, layers: int) -> None:
    if C < 2 or C % 2:
        raise ValueError(f"C must be an even number >= 2 (FactorizedReduce halves it), got {C}")
    if layers < 3:
        raise ValueError(f"an evaluation network needs at least 3 cells (two reductions), got {layers}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")


class _Network(nn.Module):
    """Cell stack shared by both networks; subclasses provide the stem and the aux head."""

    stem_multiplier = 3

    def _build_cells(
        self, genotype: Genotype, C_prev_prev: int, C_prev: int, C_curr: int, layers: int, reduction_prev: bool
    ) -> int:
        self.cells = nn.ModuleList()
        self._aux_layer = reduction_layers(layers)[1]
        aux_channels = C_prev
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                C_curr *= 2
            cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == self._aux_layer:
                aux_channels = C_prev
        self._C_final = C_prev
        return aux_channels

    def _run_cells(self, s0: torch.Tensor, s1: torch.Tensor):
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self._aux_layer and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)
        out = self.global_pooling(s1)
        return self.classifier(out.flatten(1)), logits_aux


class NetworkCIFAR(_Network):
    """DARTS evaluation network for 32×32 images (paper §4.2: C=36, 20 cells, aux 0.4)."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: Genotype):
        super().__init__()
        _check_args(C, num_classes, layers)
        self._layers = layers
        self.drop_path_prob = 0.0
        C_curr = self.stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(3, C_curr, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_curr),
        )
        aux_channels = self._build_cells(genotype, C_curr, C_curr, C, layers, reduction_prev=False)
        self.auxiliary_head = AuxiliaryHeadCIFAR(aux_channels, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self._C_final, num_classes)

    def forward(self, x: torch.Tensor):
        s = self.stem(x)
        return self._run_cells(s, s)


class NetworkImageNet(_Network):
    """DARTS evaluation network for 224×224 images (paper §4.3: C=48, 14 cells, aux 0.4).

    The final pooling is adaptive: at 224×224 the last maps are 7×7, where it equals DARTS's
    ``AvgPool2d(7)``; other sizes (multiples of 32) work too.
    """

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: Genotype):
        super().__init__()
        _check_args(C, num_classes, layers)
        self._layers = layers
        self.drop_path_prob = 0.0
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        aux_channels = self._build_cells(genotype, C, C, C, layers, reduction_prev=True)
        self.auxiliary_head = AuxiliaryHeadImageNet(aux_channels, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self._C_final, num_classes)

    def forward(self, x: torch.Tensor):
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        return self._run_cells(s0, s1)


def count_parameters(model: nn.Module, include_auxiliary: bool = False) -> int:
    """Number of parameters; the auxiliary head is left out by default (DARTS convention)."""
    return sum(
        p.numel() for name, p in model.named_parameters() if include_auxiliary or not name.startswith("auxiliary_head.")
    )


__all__ = [
    "Cell",
    "AuxiliaryHeadCIFAR",
    "AuxiliaryHeadImageNet",
    "NetworkCIFAR",
    "NetworkImageNet",
    "count_parameters",
    "reduction_layers",
    "auxiliary_input_ok",
]
