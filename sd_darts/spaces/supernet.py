"""The part of the supernet contract (docs/ARCHITECTURE.md) that every space shares: which
parameters are weights and which are alphas."""

from __future__ import annotations

from collections.abc import Iterator

import torch.nn as nn


class Supernet(nn.Module):
    """Base of the supernets: ``weights()`` are all parameters but ``arch_parameters()``."""

    def arch_parameters(self) -> list[nn.Parameter]:
        """The alphas (the architect's parameters)."""
        raise NotImplementedError

    def named_weights(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Every ``(name, parameter)`` that is not an alpha, with ``state_dict`` names."""
        alpha_ids = {id(a) for a in self.arch_parameters()}
        for name, p in self.named_parameters():
            if id(p) not in alpha_ids:
                yield name, p

    def weights(self) -> list[nn.Parameter]:
        """Every parameter that is not an alpha (the weight optimizer's parameters)."""
        return [p for _, p in self.named_weights()]
