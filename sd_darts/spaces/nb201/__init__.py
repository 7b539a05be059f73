"""The NAS-Bench-201 search space (NB201 §2.1, paper Table 4): its supernet, the fused supernet, the benchmark's queries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...genotypes import NB201_PRIMITIVES

if TYPE_CHECKING:
    import torch.nn as nn


class NB201Space:
    """The NAS-Bench-201 search space as seen by the search loop (see :mod:`sd_darts.spaces`).

    ``layers`` is N, the number of search cells per stage (NB201: 5, i.e. 15 cells).
    """

    name = "nb201"
    default_channels = 16
    default_layers = 5
    primitives = NB201_PRIMITIVES

    #: Implementations of the supernet: the reference modules, or the fused kernels of
    #: :mod:`sd_darts.spaces.nb201.fused` (same function and initialisation, fewer and bigger kernels).
    impls = ("reference", "fused")

    def build(self, C: int, layers: int, num_classes: int, impl: str = "reference") -> nn.Module:
        """A freshly initialised supernet; ``impl="fused"`` draws the same initial weights and
        alphas from the global RNG as the reference (it builds one and converts it)."""
        if impl not in self.impls:
            raise ValueError(f"impl must be one of {self.impls}, got {impl!r}")
        from .fused import FusedNB201Supernet  # imported on use: the package face stays torch-free for the CLI
        from .supernet import NB201Supernet

        ref = NB201Supernet(C, layers, num_classes)
        if impl == "reference":
            return ref

        return FusedNB201Supernet.from_reference(ref)

    def __repr__(self) -> str:
        return "NB201Space()"


SPACE = NB201Space()

__all__ = ["NB201Space", "SPACE"]
