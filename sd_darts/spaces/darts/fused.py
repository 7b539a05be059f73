"""The DARTS search supernet with fewer, bigger kernels: the same function as
:class:`~sd_darts.spaces.darts.DartsSupernet` (DARTS Eq. 2), computed in one round per node
with outgoing edges, every op type once for all the round's edges (grouped convolutions, one
BatchNorm call with the edge weights as scales, channels_last; the cells are in
:mod:`sd_darts.spaces.darts.fused_cell`), optionally for S stacked seeds.  Running statistics
and the reference <-> fused conversion are exact; docs/speed.md has the full account and
tests/spaces/test_darts_fused.py the equality checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...genotypes import PRIMITIVES, Genotype, derive_genotype
from ..channels_last import BN_EPS, BN_MOMENTUM, CL
from ..supernet import Supernet
from .fused_cell import CONV_ORDER, SEED, FusedCell, embed_kernel, extract_kernel, seed_slot
from .supernet import DartsSupernet, check_primitives, num_edges


class FusedDartsSupernet(Supernet):
    """Fused DARTS search supernet: the function, parameters (in another layout) and supernet
    contract of :class:`~sd_darts.spaces.darts.DartsSupernet`.

    ``num_seeds = S > 1`` stacks S seeds (:mod:`sd_darts.search.stacked`): inputs (S, N, 3, H, W), alphas
    (S, 14, 8), one genotype per seed, ``seed_axes`` for per-seed clipping (docs/speed.md).  Build one
    with :meth:`from_reference` or ``get_space("darts").build(..., impl="fused")``.
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
        num_seeds: int = 1,
    ):
        super().__init__()
        primitives = check_primitives(primitives)
        if min(C, layers, num_classes, num_seeds) < 1:
            raise ValueError(
                f"C, layers, num_classes and num_seeds must be positive, got {C}, {layers}, {num_classes}, {num_seeds}"
            )
        if not 1 <= multiplier <= steps:
            raise ValueError(f"multiplier must be in 1..steps={steps}, got {multiplier}")
        S = num_seeds
        self.primitives = primitives
        self.C, self.num_classes, self.layers, self.num_seeds = C, num_classes, layers, S
        self.steps, self.multiplier = steps, multiplier
        self.stem_multiplier, self.in_channels = stem_multiplier, in_channels
        C_stem = stem_multiplier * C
        self.stem_weight = nn.Parameter(torch.zeros(S * C_stem, in_channels, 3, 3))
        self.stem_bn_weight = nn.Parameter(torch.ones(S * C_stem))
        self.stem_bn_bias = nn.Parameter(torch.zeros(S * C_stem))
        self.register_buffer("stem_mean", torch.zeros(S * C_stem))
        self.register_buffer("stem_var", torch.ones(S * C_stem))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))
        self.reduction_layers = (layers // 3, 2 * layers // 3)
        self.cells = nn.ModuleList()
        C_prev_prev, C_prev, C_curr, reduction_prev = C_stem, C_stem, C, False
        for i in range(layers):
            reduction = i in self.reduction_layers
            if reduction:
                C_curr *= 2
            self.cells.append(
                FusedCell(steps, multiplier, C_prev_prev, C_prev, C_curr, reduction, reduction_prev, self.primitives, S)
            )
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, multiplier * C_curr
        self.C_final = C_prev
        lead = (S,) if S > 1 else ()
        self.classifier_weight = nn.Parameter(torch.zeros(*lead, num_classes, C_prev))
        self.classifier_bias = nn.Parameter(torch.zeros(*lead, num_classes))
        shape = (*lead, num_edges(steps), len(self.primitives))
        self.alphas_normal = nn.Parameter(torch.zeros(shape))
        self.alphas_reduce = nn.Parameter(torch.zeros(shape))
        self.seed_axes = {
            name: (1, S, p.numel() // S)
            for name, p in (
                ("stem_weight", self.stem_weight),
                ("stem_bn_weight", self.stem_bn_weight),
                ("stem_bn_bias", self.stem_bn_bias),
                ("classifier_weight", self.classifier_weight),
                ("classifier_bias", self.classifier_bias),
                ("alphas_normal", self.alphas_normal),
                ("alphas_reduce", self.alphas_reduce),
            )
        }
        for k, cell in enumerate(self.cells):
            self.seed_axes.update({f"cells.{k}.{n}": v for n, v in cell.seed_axes.items()})
            for r, rnd in enumerate(cell.rounds):
                self.seed_axes.update({f"cells.{k}.rounds.{r}.{n}": v for n, v in rnd.seed_axes.items()})

    # ---- conversion from / to the reference ----------------------------------------------
    @classmethod
    def from_reference(cls, refs: DartsSupernet | Sequence[DartsSupernet]) -> FusedDartsSupernet:
        """The fused model holding the weights, alphas and BN statistics of ``refs`` (one
        reference supernet, or one per seed, all with the same arguments), on their device and
        in their dtype."""
        refs = [refs] if isinstance(refs, DartsSupernet) else list(refs)
        r = refs[0]
        model = cls(
            r.C,
            r.num_classes,
            r.layers,
            steps=r.steps,
            multiplier=r.multiplier,
            stem_multiplier=r.stem[0].out_channels // r.C,
            in_channels=r.stem[0].in_channels,
            primitives=r.primitives,
            num_seeds=len(refs),
        )
        model.to(device=r.alphas_normal.device, dtype=r.alphas_normal.dtype)
        for s, ref in enumerate(refs):
            model.load_reference_state_dict(ref.state_dict(), seed=s)
        return model

    def reference_slots(self) -> Iterator[tuple[str, str, Callable, str | None]]:
        """``(reference name, fused name, view(t, seed), kind)`` for every reference tensor
        except the ``num_batches_tracked`` counters; ``kind`` is a union-kernel op name (the
        view is the (C, 5, 5) union kernel), ``"shared"`` (pooling BN statistics, one copy for
        the edges of a source) or None (the view has the reference's values)."""
        S, C0 = self.num_seeds, self.stem_multiplier * self.C
        yield "stem.0.weight", "stem_weight", seed_slot((S, C0, -1, 3, 3), SEED), None
        for ref, name in (
            ("weight", "stem_bn_weight"),
            ("bias", "stem_bn_bias"),
            ("running_mean", "stem_mean"),
            ("running_var", "stem_var"),
        ):
            yield f"stem.1.{ref}", name, seed_slot((S, C0), SEED), None
        col = {op: i for i, op in enumerate(self.primitives)}
        for k, cell in enumerate(self.cells):
            yield from cell.reference_slots(f"cells.{k}.", f"cells.{k}.", col)
        K, Cf, n_e, n_p = self.num_classes, self.C_final, num_edges(self.steps), len(self.primitives)
        yield "classifier.weight", "classifier_weight", seed_slot((S, K, Cf), SEED), None
        yield "classifier.bias", "classifier_bias", seed_slot((S, K), SEED), None
        yield "alphas_normal", "alphas_normal", seed_slot((S, n_e, n_p), SEED), None
        yield "alphas_reduce", "alphas_reduce", seed_slot((S, n_e, n_p), SEED), None

    def _tensors(self) -> dict[str, torch.Tensor]:
        out = dict(self.named_parameters())
        out.update(self.named_buffers())
        return out

    @torch.no_grad()
    def load_reference_state_dict(self, state: dict[str, torch.Tensor], seed: int = 0) -> None:
        """Copy a :class:`DartsSupernet` ``state_dict`` (same arguments) into seed ``seed``; the
        BN ``num_batches_tracked`` counters are taken from the stem's."""
        mine = self._tensors()
        seen = set()
        for ref_name, name, view, kind in self.reference_slots():
            if ref_name not in state:
                raise KeyError(f"the reference state has no {ref_name!r}")
            seen.add(ref_name)
            dst = view(mine[name], seed)
            dst.copy_(embed_kernel(kind, state[ref_name]) if kind in CONV_ORDER else state[ref_name].reshape(dst.shape))
        if "stem.1.num_batches_tracked" in state:
            self.num_batches_tracked.copy_(state["stem.1.num_batches_tracked"])
        extra = {k for k in state if not k.endswith("num_batches_tracked")} - seen
        if extra:
            raise KeyError(f"the reference state has entries this fused model does not hold: {sorted(extra)[:5]}")

    def reference_model(self) -> DartsSupernet:
        """A new :class:`DartsSupernet` (on the CPU) built with this model's arguments: the
        shape of one seed in the reference layout."""
        return DartsSupernet(
            self.C,
            self.num_classes,
            self.layers,
            steps=self.steps,
            multiplier=self.multiplier,
            stem_multiplier=self.stem_multiplier,
            in_channels=self.in_channels,
            primitives=self.primitives,
        )

    @torch.no_grad()
    def reference_state_dict(self, seed: int = 0) -> dict[str, torch.Tensor]:
        """Seed ``seed`` as a :class:`DartsSupernet` ``state_dict`` (loads with ``strict=True``
        into a reference built with the same arguments): for checkpoints in the reference
        format and for the final genotype/eval of a fused run."""
        mine = self._tensors()
        out = {}
        for ref_name, name, view, kind in self.reference_slots():
            t = view(mine[name], seed)
            out[ref_name] = extract_kernel(kind, t) if kind in CONV_ORDER else t.clone()
        template = self.reference_model().state_dict()
        result = {}
        for name, t in template.items():
            if name.endswith("num_batches_tracked"):
                result[name] = self.num_batches_tracked.detach().clone()
            else:
                result[name] = out[name].reshape(t.shape)
        return result

    # ---- forward -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S = self.num_seeds
        if S > 1:
            if x.dim() != 5 or x.shape[0] != S:
                raise ValueError(f"a {S}-seed supernet takes (S, N, C, H, W) inputs, got {tuple(x.shape)}")
            x = x.transpose(0, 1).reshape(x.shape[1], S * x.shape[2], x.shape[3], x.shape[4])
        x = x.contiguous(memory_format=CL)
        flat = {
            False: F.softmax(self.alphas_normal, dim=-1).reshape(-1),
            True: F.softmax(self.alphas_reduce, dim=-1).reshape(-1),
        }
        if self.training:
            self.num_batches_tracked.add_(1)
        s = F.conv2d(x, self.stem_weight, padding=1, groups=S)
        s = F.batch_norm(
            s, self.stem_mean, self.stem_var, self.stem_bn_weight, self.stem_bn_bias, self.training, BN_MOMENTUM, BN_EPS
        )
        r0 = r1 = F.relu(s)
        gathered = {}  # cells of the same kind and width share their gathered edge weights
        last = len(self.cells) - 1
        for k, cell in enumerate(self.cells):
            key = (cell.reduction, cell.C)
            if key not in gathered:
                gathered[key] = cell.round_weights(flat[cell.reduction])
            s = cell(r0, r1, gathered[key])
            if k < last:
                r0, r1 = r1, F.relu(s)
        feat = s.mean((2, 3))
        if S == 1:
            return F.linear(feat, self.classifier_weight, self.classifier_bias)
        feat = feat.view(feat.shape[0], S, self.C_final).transpose(0, 1)
        return torch.baddbmm(self.classifier_bias.unsqueeze(1), feat, self.classifier_weight.transpose(1, 2))

    # ---- supernet contract -------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """The alphas: ``[alphas_normal, alphas_reduce]``."""
        return [self.alphas_normal, self.alphas_reduce]

    @torch.no_grad()
    def genotype(self) -> Genotype | list[Genotype]:
        """The DARTS genotype of the current alphas; one per seed when ``num_seeds > 1``."""
        wn = F.softmax(self.alphas_normal, dim=-1)
        wr = F.softmax(self.alphas_reduce, dim=-1)
        kw = {"steps": self.steps, "multiplier": self.multiplier, "primitives": self.primitives}
        if self.num_seeds == 1:
            return derive_genotype(wn, wr, **kw)
        return [derive_genotype(wn[s], wr[s], **kw) for s in range(self.num_seeds)]


__all__ = ["FusedDartsSupernet"]
