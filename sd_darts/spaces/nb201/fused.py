"""The NAS-Bench-201 search supernet with fewer, bigger kernels: the same function as
:class:`~sd_darts.spaces.nb201.NB201Supernet`, computed in three rounds (node 0 -> 1, 2, 3;
node 1 -> 2, 3; node 2 -> 3) as :mod:`sd_darts.spaces.darts.fused` does for DARTS; the cells'
BNs track running statistics as the reference's do.  One seed per model; docs/speed.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...genotypes import NB201_EDGES, NB201_PRIMITIVES, NB201Genotype, derive_nb201_genotype
from ..channels_last import BN_EPS, BN_MOMENTUM, CL, to_nchw, to_nhwc
from ..supernet import Supernet
from .supernet import NUM_NODES, NB201SearchCell, NB201Supernet

_COL = {op: i for i, op in enumerate(NB201_PRIMITIVES)}
_CONVS = ("nor_conv_1x1", "nor_conv_3x3")
_PF = ("avg_pool_3x3", "skip_connect")


class FusedNB201Cell(nn.Module):
    """An NB201 search cell in ``NUM_NODES - 1`` rounds; parameters named ``rounds.r.*``."""

    def __init__(self, C: int):
        super().__init__()
        self.C = C
        self.rows: list[list[int]] = []  # alpha rows of the edges of each round
        self.rounds = nn.ModuleList()
        for src in range(NUM_NODES - 1):
            rows = [NB201_EDGES.index((dst, src)) for dst in range(src + 1, NUM_NODES)]
            self.rows.append(rows)
            E = len(rows)
            rnd = nn.Module()
            rnd.w1 = nn.Parameter(torch.zeros(E * C, C, 1, 1))
            rnd.b1 = nn.Parameter(torch.zeros(E * C))
            rnd.w3 = nn.Parameter(torch.zeros(E * C, C, 3, 3))
            rnd.b3 = nn.Parameter(torch.zeros(E * C))
            rnd.register_buffer("bn_mean", torch.zeros(2 * E * C))
            rnd.register_buffer("bn_var", torch.ones(2 * E * C))
            self.rounds.append(rnd)
        index, self._sizes = [], []
        for rows in self.rows:
            E = len(rows)
            r = torch.tensor(rows).view(1, E, 1) * len(NB201_PRIMITIVES)
            bn = (r + torch.tensor([_COL[op] for op in _CONVS]).view(2, 1, 1)).expand(2, E, C).reshape(-1)
            pf = (r.view(E, 1) + torch.tensor([_COL[op] for op in _PF]).view(1, 2)).reshape(-1)
            index += [bn, pf]
            self._sizes += [bn.numel(), pf.numel()]
        self.register_buffer("weight_index", torch.cat(index), persistent=False)

    def forward(self, x: torch.Tensor, w_flat: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W) channels_last; ``w_flat`` the flattened softmax(alphas)."""
        N, C, H, W = x.shape
        chunks = w_flat.index_select(0, self.weight_index).split(self._sizes)
        x_nhwc, rest = to_nhwc(x), None
        for r, rnd in enumerate(self.rounds):
            E = len(self.rows[r])
            relu = F.relu(x)
            a = F.conv2d(relu, rnd.w1, rnd.b1)
            b = F.conv2d(relu, rnd.w3, rnd.b3, padding=1)
            h = F.batch_norm(
                torch.cat([a, b], 1), rnd.bn_mean, rnd.bn_var, chunks[2 * r], None, self.training, BN_MOMENTUM, BN_EPS
            )
            conv = to_nhwc(h).reshape(N, H, W, 2, E, C).sum(3).permute(3, 0, 1, 2, 4)
            pool = to_nhwc(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
            q = torch.stack([pool, x_nhwc], 0).view(2, -1)
            acc = torch.mm(chunks[2 * r + 1].view(E, 2), q).view(E, N, H, W, C) + conv
            if rest is not None:
                acc = rest + acc
            if E > 1:
                node, rest = acc.split([1, E - 1], 0)
            else:
                node = acc
            x_nhwc = node.reshape(N, H, W, C)
            x = to_nchw(x_nhwc)
        return x


class FusedNB201Supernet(Supernet):
    """Fused NB201 search supernet: the function, parameters (cells in another layout) and
    supernet contract of :class:`~sd_darts.spaces.nb201.NB201Supernet` (cells with
    ``affine=False``, ``track_running_stats=True``, as :class:`~sd_darts.spaces.nb201.NB201Space`
    builds them)."""

    def __init__(self, C: int, N: int, num_classes: int, in_channels: int = 3):
        super().__init__()
        ref = NB201Supernet(C, N, num_classes, in_channels=in_channels)  # structure of the shared parts
        self.C, self.N, self.num_classes, self.in_channels = C, N, num_classes, in_channels
        self.stem = ref.stem
        self.cells = nn.ModuleList(
            FusedNB201Cell(m.edges[0]._ops[2].op[1].in_channels) if isinstance(m, NB201SearchCell) else m
            for m in ref.cells
        )
        self.lastact = ref.lastact
        self.global_pooling = ref.global_pooling
        self.classifier = ref.classifier
        self.alphas = nn.Parameter(torch.zeros(len(NB201_EDGES), len(NB201_PRIMITIVES)))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    @classmethod
    def from_reference(cls, ref: NB201Supernet) -> FusedNB201Supernet:
        model = cls(ref.C, ref.N, ref.num_classes, in_channels=ref.stem[0].in_channels)
        model.to(device=ref.alphas.device, dtype=ref.alphas.dtype)
        model.load_reference_state_dict(ref.state_dict())
        return model

    def _cell_slots(self) -> Iterator[tuple[str, str, callable]]:
        for k, cell in enumerate(self.cells):
            if not isinstance(cell, FusedNB201Cell):
                continue
            C = cell.C
            for r, rows in enumerate(cell.rows):
                E = len(rows)
                for e, row in enumerate(rows):
                    for o, op in enumerate(_CONVS):
                        ref = f"cells.{k}.edges.{row}._ops.{_COL[op]}.op."
                        mine = f"cells.{k}.rounds.{r}."
                        wk = "w1" if o == 0 else "w3"
                        bk = "b1" if o == 0 else "b3"
                        yield ref + "1.weight", mine + wk, lambda t, e=e, E=E, C=C: t.view(E, C, *t.shape[1:])[e]
                        yield ref + "1.bias", mine + bk, lambda t, e=e, E=E, C=C: t.view(E, C)[e]
                        for stat, name in (("running_mean", "bn_mean"), ("running_var", "bn_var")):
                            yield ref + "2." + stat, mine + name, lambda t, o=o, e=e, E=E, C=C: t.view(2, E, C)[o, e]

    def _tensors(self) -> dict[str, torch.Tensor]:
        out = dict(self.named_parameters())
        out.update(self.named_buffers())
        return out

    @torch.no_grad()
    def load_reference_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        mine = self._tensors()
        cell_refs = set()
        for ref_name, name, view in self._cell_slots():
            view(mine[name]).copy_(state[ref_name])
            cell_refs.add(ref_name)
        for name, t in state.items():
            if name in cell_refs:
                continue
            if name in mine:
                mine[name].copy_(t)
            elif name.endswith("num_batches_tracked") and ".edges." in name:
                self.num_batches_tracked.copy_(t)
            else:
                raise KeyError(f"the reference state has an entry this fused model does not hold: {name!r}")

    @torch.no_grad()
    def reference_state_dict(self) -> dict[str, torch.Tensor]:
        """As :class:`NB201Supernet` ``state_dict`` (loads with ``strict=True``)."""
        mine = self._tensors()
        out = {ref_name: view(mine[name]).clone() for ref_name, name, view in self._cell_slots()}
        template = NB201Supernet(self.C, self.N, self.num_classes, in_channels=self.in_channels).state_dict()
        result = {}
        for name in template:
            if name in out:
                result[name] = out[name]
            elif name in mine:
                result[name] = mine[name].detach().clone()
            elif name.endswith("num_batches_tracked"):
                result[name] = self.num_batches_tracked.detach().clone()
            else:  # pragma: no cover - a reference entry without a home is a bug
                raise KeyError(name)
        return result

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.softmax(self.alphas, dim=-1).reshape(-1)
        if self.training:
            self.num_batches_tracked.add_(1)
        h = self.stem(x.contiguous(memory_format=CL))
        for cell in self.cells:
            h = cell(h, w) if isinstance(cell, FusedNB201Cell) else cell(h)
        h = self.global_pooling(self.lastact(h))
        return self.classifier(h.flatten(1))

    # ---- supernet contract -------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas]

    @torch.no_grad()
    def genotype(self) -> NB201Genotype:
        return derive_nb201_genotype(self.alphas)


__all__ = ["FusedNB201Supernet", "FusedNB201Cell"]
