"""The DARTS search space (DARTS §2.1, paper §4.1): its supernet, the fused supernet, the operations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...genotypes import PRIMITIVES

if TYPE_CHECKING:
    import torch.nn as nn


class DartsSpace:
    """The DARTS search space as seen by the search loop (see :mod:`sd_darts.spaces`)."""

    name = "darts"
    default_channels = 16
    default_layers = 8
    primitives = PRIMITIVES

    #: Implementations of the supernet: the reference modules, or the fused kernels of
    #: :mod:`sd_darts.spaces.darts.fused` (same function and initialisation, fewer and bigger kernels).
    impls = ("reference", "fused")

    def build(
        self,
        C: int,
        layers: int,
        num_classes: int,
        primitives: Sequence[str] | None = None,
        impl: str = "reference",
    ) -> nn.Module:
        """A freshly initialised supernet.  ``impl="fused"`` draws the same initial weights and
        alphas from the global RNG as the reference (it builds one and converts it), so a seed
        gives the same supernet either way."""
        if impl not in self.impls:
            raise ValueError(f"impl must be one of {self.impls}, got {impl!r}")
        from .fused import FusedDartsSupernet  # imported on use: the package face stays torch-free for the CLI
        from .supernet import DartsSupernet

        ref = DartsSupernet(C, num_classes, layers, primitives=self.primitives if primitives is None else primitives)
        if impl == "reference":
            return ref

        return FusedDartsSupernet.from_reference(ref)

    def __repr__(self) -> str:
        return "DartsSpace()"


SPACE = DartsSpace()

__all__ = ["DartsSpace", "SPACE"]
