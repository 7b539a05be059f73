"""Pluggable search spaces.

A search space is an object with a ``name``, the default supernet size of the paper's search
(``default_channels`` C and ``default_layers`` cells) and ``build(C, layers, num_classes)``
returning a *supernet*: an ``nn.Module`` following the supernet contract of
``docs/ARCHITECTURE.md`` (``forward(x) -> logits``, ``arch_parameters()``, ``weights()``,
``named_weights()``, ``genotype()``).  The search loop, the architect and the Hessian code only
talk to that contract, so one loop serves every space.

Spaces are imported lazily: asking for ``darts`` does not import the NAS-Bench-201 code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

#: Names accepted by :func:`get_space`, in the order they are listed to users.
SPACE_NAMES: tuple[str, ...] = ("darts", "nb201")

# name -> (module, attribute); the module is imported on first use.
_REGISTRY: dict[str, tuple[str, str]] = {
    "darts": ("sd_darts.spaces.darts", "SPACE"),
    "nb201": ("sd_darts.spaces.nb201", "SPACE"),
}


@runtime_checkable
class SearchSpace(Protocol):
    """What a search space provides.

    Attributes:
        name: the registry name (``"darts"``, ``"nb201"``).
        default_channels: initial channels C of the search supernet (16 in DARTS and NB201).
        default_layers: number of cells of the search supernet (DARTS: 8; NB201: N=5 cells per
            stage).
    """

    name: str
    default_channels: int
    default_layers: int

    def build(self, C: int, layers: int, num_classes: int, impl: str = "reference") -> nn.Module:
        """Return a freshly initialised supernet (weights and alphas) on the CPU.

        ``impl="fused"`` returns the same supernet (same function, same initial values for the
        same global RNG state) computed with fewer, bigger kernels (docs/speed.md); its
        parameters are laid out differently and convert to the reference's exactly."""
        ...


def get_space(name: str) -> SearchSpace:
    """The search space called ``name``; an unknown name raises :class:`UserError`."""
    try:
        module_name, attr = _REGISTRY[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown search space {name!r}; known spaces: {', '.join(SPACE_NAMES)}") from None
    return getattr(importlib.import_module(module_name), attr)


__all__ = ["SPACE_NAMES", "SearchSpace", "get_space"]
