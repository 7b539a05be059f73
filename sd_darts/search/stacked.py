"""Several search seeds in one process: S DARTS supernets as one fused supernet with
``num_seeds = S`` (convolutions grouped by seed), nothing shared between seeds, so seed s
follows its single-seed trajectory; each seed's state converts to and from the reference step's
checkpoint format, so S ordinary run folders are written and resumed (docs/speed.md, "Several seeds in one process").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..spaces.darts.fused import FusedDartsSupernet
from ..spaces.darts.supernet import DartsSupernet

if TYPE_CHECKING:
    from .fast import FirstOrderStep


def build_stacked(
    seeds: Sequence[int],
    C: int,
    layers: int,
    num_classes: int,
    primitives: Sequence[str] | None = None,
) -> FusedDartsSupernet:
    """The S-seed supernet whose seed ``s`` part is initialised exactly as
    ``seed_everything(seeds[s]); get_space("darts").build(C, layers, num_classes)`` (on the CPU;
    move it with ``.to(device)``)."""
    from ..utils.runtime import seed_everything

    if not seeds:
        raise ValueError("build_stacked needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    kw = {} if primitives is None else {"primitives": tuple(primitives)}
    refs = []
    for seed in seeds:
        seed_everything(int(seed))
        refs.append(DartsSupernet(C, num_classes, layers, **kw))
    return FusedDartsSupernet.from_reference(refs)


def stack_batches(batches: Sequence[Sequence[torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """One batch per seed -> the stacked batch: ``(x, y, idx)`` each with a leading seed
    dimension (S, N, ...)."""
    return tuple(torch.stack(parts) for parts in zip(*batches))


def _reference_param_tensors(model: FusedDartsSupernet, tensors: dict[str, torch.Tensor], seed: int):
    """Tensors shaped like the fused parameters (e.g. SGD momentum buffers), by fused name ->
    seed ``seed``'s copies by reference parameter name."""
    from ..spaces.darts.fused_cell import CONV_ORDER, extract_kernel

    out = {}
    for ref_name, name, view, kind in model.reference_slots():
        if name in tensors:
            t = view(tensors[name], seed)
            out[ref_name] = extract_kernel(kind, t) if kind in CONV_ORDER else t.clone()
    return out


@torch.no_grad()
def _load_reference_param_tensors(model: FusedDartsSupernet, tensors: dict[str, torch.Tensor], ref, seed: int):
    from ..spaces.darts.fused_cell import CONV_ORDER, embed_kernel

    for ref_name, name, view, kind in model.reference_slots():
        if name in tensors and ref_name in ref:
            dst = view(tensors[name], seed)
            dst.copy_(embed_kernel(kind, ref[ref_name]) if kind in CONV_ORDER else ref[ref_name].reshape(dst.shape))


def _reference_model(model: FusedDartsSupernet) -> DartsSupernet:
    return model.reference_model().to(device=model.alphas_normal.device, dtype=model.alphas_normal.dtype)


def seed_checkpoint(step: FirstOrderStep, seed: int, lr: float) -> dict[str, Any]:
    """Seed ``seed`` of a stacked step in the single-seed reference format: ``model``
    (:class:`DartsSupernet` ``state_dict``), ``w_optimizer`` (``torch.optim.SGD`` state dict with
    learning rate ``lr``), ``a_optimizer`` (``torch.optim.Adam``), ``teacher_cache``
    (``TeacherCache.state_dict``, when the step has a cache)."""
    model = step.model
    s = step.settings
    ref = _reference_model(model)
    ref.load_state_dict(model.reference_state_dict(seed))
    names = [n for n, _ in ref.named_weights()]
    w_opt = torch.optim.SGD(
        ref.weights(), lr=lr, momentum=s.momentum, weight_decay=s.weight_decay, nesterov=s.nesterov and s.momentum > 0
    )
    w_state = w_opt.state_dict()
    stepped = float(step.adam_step) > 0  # one host read, at checkpoint time
    if stepped:
        bufs = _reference_param_tensors(model, dict(zip(step.weight_names, step.momentum_buffer)), seed)
        w_state["state"] = {i: {"momentum_buffer": bufs[n]} for i, n in enumerate(names)}
    a_opt = torch.optim.Adam(
        ref.arch_parameters(),
        lr=s.arch_learning_rate,
        betas=(s.arch_beta1, s.arch_beta2),
        eps=s.arch_eps,
        weight_decay=s.arch_weight_decay,
    )
    a_state = a_opt.state_dict()
    if stepped:
        n_e, n_p = model.alphas_normal.shape[-2:]
        a_state["state"] = {
            i: {
                "step": step.adam_step.detach().to("cpu", torch.float32).clone(),
                "exp_avg": step.exp_avg[i].detach().view(-1, n_e, n_p)[seed].clone(),
                "exp_avg_sq": step.exp_avg_sq[i].detach().view(-1, n_e, n_p)[seed].clone(),
            }
            for i in range(2)
        }
    out = {"model": ref.state_dict(), "w_optimizer": w_state, "a_optimizer": a_state}
    if step.cache is not None:
        out["teacher_cache"] = step.cache.seed(seed).state_dict()
    return out


@torch.no_grad()
def load_seed_checkpoint(step: FirstOrderStep, seed: int, state: dict[str, Any]) -> None:
    """Inverse of :func:`seed_checkpoint`: put a single-seed reference checkpoint (``model``,
    ``w_optimizer``, ``a_optimizer``, ``teacher_cache``) into seed ``seed`` of a stacked step.
    Adam's step count is shared by the seeds (they step together), so the last seed loaded
    sets it."""
    model = step.model
    model.load_reference_state_dict(state["model"], seed=seed)
    ref = _reference_model(model)
    names = [n for n, _ in ref.named_weights()]
    w_state = state["w_optimizer"].get("state", {})
    if w_state:
        bufs = {n: w_state[i]["momentum_buffer"] for i, n in enumerate(names)}
        _load_reference_param_tensors(model, dict(zip(step.weight_names, step.momentum_buffer)), bufs, seed)
    a_state = state["a_optimizer"].get("state", {})
    if a_state:
        n_e, n_p = model.alphas_normal.shape[-2:]
        for i in range(2):
            step.exp_avg[i].view(-1, n_e, n_p)[seed].copy_(a_state[i]["exp_avg"])
            step.exp_avg_sq[i].view(-1, n_e, n_p)[seed].copy_(a_state[i]["exp_avg_sq"])
        step.set_adam_step(a_state[0]["step"])
    if step.cache is not None and "teacher_cache" in state:
        step.cache.seed(seed).load_state_dict(state["teacher_cache"])


__all__ = [
    "build_stacked",
    "stack_batches",
    "seed_checkpoint",
    "load_seed_checkpoint",
]
