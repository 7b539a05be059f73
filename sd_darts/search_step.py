"""A capturable first-order SD-DARTS step: alpha step, then weight step, no host
synchronisation, static shapes, every changing setting a device tensor.

One call of :class:`FirstOrderStep` does what one iteration of the reference loop in
:mod:`sd_darts.search` does with ``unrolled=False`` (paper Algorithms 1-2, Eq. 2):

1. alpha step on the validation batch, weights frozen: ``L_val = CE + λ·kd_on·KD`` (KD = the
   self-distillation term of :func:`sd_darts.distill.distillation_loss` against the voting
   teacher of :class:`~sd_darts.distill.TeacherCache`), gradient w.r.t. the alphas only, the
   batch's probabilities recorded in the teacher cache when recording is on, Adam (the
   reference's ``torch.optim.Adam`` formula, written with tensors only);
2. weight step on the training batch, alphas frozen: the same loss, gradient w.r.t. the weights
   only, the batch recorded, gradient-norm clipping and SGD with momentum and weight decay
   (``torch.optim.SGD``'s formula; ``clip_grad_norm_``'s), learning rate from a tensor.

Everything the loop changes between steps lives on the device: the learning rate, the epoch, the
KD switch, the recording switch (the cache slot is ``epoch % K``), Adam's step count and the
metric accumulators.  Nothing in a step reads a tensor on the host, branches on a tensor value
or changes a shape, so a step can be captured once in a CUDA graph and replayed
(:class:`GraphedStep`), or compiled with ``torch.compile`` (``compile="model"`` or ``"step"``).

``λ = 0`` or ``method="darts"`` is DARTS: the KD term is multiplied by exactly 0 (it is always
finite), so losses and gradients are bit-identical to plain cross-entropy's.

Several seeds (``model.num_seeds = S > 1``, :mod:`sd_darts.stacked`): inputs carry a leading seed
dimension, each seed has its own loss (the step minimises their sum, whose gradient w.r.t. seed
``s``'s parameters is seed ``s``'s own gradient), its own teacher cache rows, its own Adam and
SGD state (both optimisers are elementwise) and its own gradient-norm clipping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .distill import DIRECTIONS, distillation_loss, kd_active, recording_active

METRICS = (
    "train_loss",
    "train_correct",
    "valid_loss",
    "valid_ce",
    "valid_correct",
    "kd_loss",
    "train_count",
    "valid_count",
)


@dataclass
class StepSettings:
    """The numeric settings of a first-order step; :meth:`from_config` reads them from a
    :class:`~sd_darts.search.SearchConfig` (defaults: the paper's, Table 1)."""

    method: str = "sd-darts"
    momentum: float = 0.9
    weight_decay: float = 3e-4
    nesterov: bool = False
    grad_clip: float = 5.0
    arch_learning_rate: float = 3e-4
    arch_weight_decay: float = 1e-3
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_eps: float = 1e-8  # torch.optim.Adam's default, as the Architect uses
    warmup_epochs: int = 25
    window: int = 2
    sd_lambda: float = 1.0
    temperature: float = 1.0
    kd_direction: str = "student_teacher"

    @classmethod
    def from_config(cls, cfg: Any) -> StepSettings:
        names = [f for f in cls.__dataclass_fields__ if f != "arch_eps"]
        return cls(**{n: getattr(cfg, n) for n in names})


@contextlib.contextmanager
def _frozen(params: Sequence[torch.nn.Parameter]):
    """Parameters that take no gradient inside the block (no activation is saved for them)."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class FirstOrderStep:
    """The first-order SD-DARTS step; see the module docstring.

    ``model`` follows the supernet contract (reference or fused, one seed or S); ``cache`` is a
    :class:`~sd_darts.distill.TeacherCache` of ``model.num_seeds`` seeds (None for
    ``method="darts"``).  Call :meth:`set_epoch` at the start of every epoch (outside a CUDA
    graph), then ``step(x, y, idx, xv, yv, iv)`` per batch; metric sums accumulate on the device
    (:meth:`reset_metrics`, :meth:`read_metrics` — the only host synchronisation, once per epoch).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        settings: StepSettings,
        cache=None,
        *,
        amp: bool = False,
        compile: str | None = None,
    ):
        if settings.kd_direction not in DIRECTIONS:
            raise ValueError(f"kd_direction must be one of {DIRECTIONS}, got {settings.kd_direction!r}")
        if compile not in (None, "model", "step"):
            raise ValueError(f"compile must be None, 'model' or 'step', got {compile!r}")
        self.model = model
        self.settings = settings
        self.num_seeds = int(getattr(model, "num_seeds", 1))
        self.sd = settings.method == "sd-darts"
        if self.sd and cache is None:
            raise ValueError("method sd-darts needs a teacher cache")
        if cache is not None and cache.num_seeds != self.num_seeds:
            raise ValueError(f"the model has {self.num_seeds} seeds but the teacher cache {cache.num_seeds}")
        self.cache = cache
        self.alphas = list(model.arch_parameters())
        named = list(model.named_weights())
        self.weight_names = [n for n, _ in named]
        self.weights = [p for _, p in named]
        dev = self.alphas[0].device
        self.device = dev
        f32 = dict(device=dev, dtype=torch.float32)
        wdt = dict(device=dev, dtype=self.weights[0].dtype)
        # ---- device-side settings, changed by set_epoch between steps
        self.lr = torch.zeros((), **wdt)
        self.epoch = torch.zeros((), dtype=torch.int64, device=dev)
        self.kd_on = torch.zeros((), **f32)  # 1.0 / 0.0: multiplies λ·KD
        self.recording = torch.zeros((), dtype=torch.bool, device=dev)
        # ---- optimiser state
        self.adam_step = torch.zeros((), device=dev, dtype=self.alphas[0].dtype)
        self.exp_avg = [torch.zeros_like(a) for a in self.alphas]
        self.exp_avg_sq = [torch.zeros_like(a) for a in self.alphas]
        self.momentum_buffer = [torch.zeros_like(w) for w in self.weights]
        self.metrics = {k: torch.zeros(self.num_seeds, **f32) for k in METRICS}  # per seed
        self.amp = amp
        self._seed_views = None
        if self.num_seeds > 1:
            axes = model.seed_axes
            self._seed_views = [axes[n] for n in self.weight_names]
        self._forward = model
        if compile == "model":
            self._forward = torch.compile(model, dynamic=False)
        self._step = self._step_impl
        if compile == "step":
            self._step = torch.compile(self._step_impl, dynamic=False)

    # ---- between steps (host side, never captured) ------------------------------------------
    def set_epoch(self, epoch: int, lr: float) -> None:
        """Epoch index (0-based) and this epoch's weight learning rate; sets the KD and recording
        switches as :class:`~sd_darts.search.SearchObjective` does."""
        s = self.settings
        self.epoch.fill_(int(epoch))
        self.lr.fill_(float(lr))
        self.kd_on.fill_(1.0 if self.sd and kd_active(epoch, s.warmup_epochs) else 0.0)
        self.recording.fill_(bool(self.sd and recording_active(epoch, s.warmup_epochs, s.window)))

    def reset_metrics(self) -> None:
        for t in self.metrics.values():
            t.zero_()

    def read_metrics(self) -> dict[str, float] | list[dict[str, float]]:
        """The epoch's sums (one host synchronisation): ``train_loss`` (CE·n), ``train_correct``,
        ``valid_loss`` (the alpha objective·n), ``valid_ce`` (its cross-entropy·n), ``valid_correct``,
        ``kd_loss`` (λ-free KD·n of the weight steps), ``train_count``, ``valid_count``, as :mod:`sd_darts.search` sums them;
        with S seeds, one such dict per seed."""
        values = torch.stack(list(self.metrics.values())).t().tolist()  # (S, metrics)
        rows = [dict(zip(self.metrics, row)) for row in values]
        return rows[0] if self.num_seeds == 1 else rows

    # ---- the step ------------------------------------------------------------------------
    def __call__(self, x, y, idx, xv, yv, iv) -> None:
        self._step(x, y, idx, xv, yv, iv)

    def _objective(self, x, y, idx):
        """(per-seed loss (S,), per-seed CE (S,), per-seed KD (S,) or None, logits (S, N, C), y (S, N))."""
        S = self.num_seeds
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()
        with ctx:
            logits = self._forward(x)
        if logits.dtype in (torch.bfloat16, torch.float16):
            logits = logits.float()
        if S == 1:
            logits, y, idx = logits.unsqueeze(0), y.unsqueeze(0), idx.unsqueeze(0)
        N, C = logits.shape[1], logits.shape[2]
        ce = F.cross_entropy(logits.reshape(S * N, C), y.reshape(-1), reduction="none").view(S, N).mean(1)
        if self.sd:
            s = self.settings
            teacher, mask = self.cache.teacher(idx, self.epoch)
            kd = distillation_loss(logits, teacher, mask, s.temperature, s.kd_direction)
            loss = ce + (s.sd_lambda * self.kd_on) * kd
            probs = F.softmax(logits.detach() / s.temperature, dim=-1)
            self.cache.record(idx, probs, self.epoch, active=self.recording)
        else:
            kd, loss = None, ce
        return loss, ce, kd, logits.detach(), y

    def _step_impl(self, x, y, idx, xv, yv, iv) -> None:
        s, m = self.settings, self.metrics
        # 1. alpha step (validation batch), weights frozen
        with _frozen(self.weights):
            loss_v, ce_v, _, logits_v, yv_ = self._objective(xv, yv, iv)
            grads = torch.autograd.grad(loss_v.sum(), self.alphas)
        n_v = yv_.shape[1]
        m["valid_loss"].add_(loss_v.detach() * n_v)
        m["valid_ce"].add_(ce_v.detach() * n_v)
        m["valid_correct"].add_((logits_v.argmax(-1) == yv_).sum(1))
        m["valid_count"].add_(n_v)
        self._adam(grads)
        # 2. weight step (training batch), alphas frozen
        with _frozen(self.alphas):
            loss, ce, kd, logits, y_ = self._objective(x, y, idx)
            grads = torch.autograd.grad(loss.sum(), self.weights)
        n = y_.shape[1]
        m["train_loss"].add_(ce.detach() * n)
        m["train_correct"].add_((logits.argmax(-1) == y_).sum(1))
        m["train_count"].add_(n)
        if kd is not None:
            m["kd_loss"].add_(kd.detach() * self.kd_on * n)
        grads = list(grads)
        if s.grad_clip > 0:
            self._clip(grads)
        self._sgd(grads)

    @torch.no_grad()
    def _adam(self, grads) -> None:
        """``torch.optim.Adam`` (L2 weight decay added to the gradient), step count a tensor."""
        s = self.settings
        b1, b2 = s.arch_beta1, s.arch_beta2
        self.adam_step.add_(1)
        if s.arch_weight_decay:
            grads = torch._foreach_add(grads, self.alphas, alpha=s.arch_weight_decay)
        torch._foreach_lerp_(self.exp_avg, grads, 1 - b1)
        torch._foreach_mul_(self.exp_avg_sq, b2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - b2)
        bc1 = 1 - torch.pow(b1, self.adam_step)
        bc2_sqrt = (1 - torch.pow(b2, self.adam_step)).sqrt()
        step_size = s.arch_learning_rate / bc1
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, s.arch_eps)
        update = torch._foreach_div(self.exp_avg, denom)
        torch._foreach_mul_(update, step_size)
        torch._foreach_sub_(self.alphas, update)

    @torch.no_grad()
    def _clip(self, grads) -> None:
        """``clip_grad_norm_`` (norm 2, ``max_norm / (norm + 1e-6)`` clamped at 1), per seed."""
        max_norm = self.settings.grad_clip
        if self._seed_views is None:
            total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
            torch._foreach_mul_(grads, coef)
            return
        for i, g in enumerate(grads):  # a channels_last weight gradient: make the seed view possible
            if not g.is_contiguous():
                grads[i] = g.contiguous()
        views = [g.view(shape) for g, shape in zip(grads, self._seed_views)]
        per_param = torch.stack([torch.linalg.vector_norm(v, dim=(0, 2)) for v in views])  # (P, S)
        total = torch.linalg.vector_norm(per_param, dim=0)
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0).view(1, -1, 1)
        torch._foreach_mul_(views, [coef] * len(views))

    @torch.no_grad()
    def _sgd(self, grads) -> None:
        """``torch.optim.SGD`` (weight decay, momentum, optional Nesterov), learning rate a tensor;
        the momentum buffers start at zero, which equals SGD's first-step copy exactly."""
        s = self.settings
        if s.weight_decay:
            grads = torch._foreach_add(grads, self.weights, alpha=s.weight_decay)
        if s.momentum:
            torch._foreach_mul_(self.momentum_buffer, s.momentum)
            torch._foreach_add_(self.momentum_buffer, grads)
            if s.nesterov:
                grads = torch._foreach_add(grads, self.momentum_buffer, alpha=s.momentum)
            else:
                grads = self.momentum_buffer
        torch._foreach_add_(self.weights, torch._foreach_mul(grads, -self.lr))

    # ---- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Optimiser state (exact resume at an epoch boundary, together with the model's
        ``state_dict``, the teacher cache and the epoch): Adam's step count and moments, SGD's
        momentum buffers, by parameter name."""
        return {
            "adam_step": self.adam_step.detach().clone(),
            "exp_avg": [t.detach().clone() for t in self.exp_avg],
            "exp_avg_sq": [t.detach().clone() for t in self.exp_avg_sq],
            "momentum_buffer": {n: b.detach().clone() for n, b in zip(self.weight_names, self.momentum_buffer)},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.adam_step.copy_(state["adam_step"])
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, list(state["exp_avg"]) + list(state["exp_avg_sq"])):
            dst.copy_(src)
        for n, b in zip(self.weight_names, self.momentum_buffer):
            b.copy_(state["momentum_buffer"][n])


class GraphRoute:
    """The host-side bookkeeping of :class:`GraphedStep` (no device needed): ``route(batch)``
    says what to do with a batch.  The first batch fixes the static shapes (a full batch; when a
    half is smaller than one batch, every batch has its shape).  Batches of those shapes give
    ``"warmup"`` ``warmup`` times, then ``"capture"`` once, then ``"replay"``; a batch of other
    shapes (the ragged last batch of a pass) gives ``"eager"`` and counts for nothing."""

    def __init__(self, warmup: int):
        self.warmup, self.calls, self.captured = warmup, 0, False
        self.shapes: tuple[tuple[int, ...], ...] | None = None

    def route(self, batch: Sequence[torch.Tensor]) -> str:
        shapes = tuple(tuple(t.shape) for t in batch)
        if self.shapes is None:
            self.shapes = shapes
        if shapes != self.shapes:
            return "eager"
        route = "replay" if self.captured else ("warmup" if self.calls < self.warmup else "capture")
        self.calls += 1
        self.captured = self.captured or route == "capture"
        return route


class GraphedStep:
    """Replays a :class:`FirstOrderStep` captured whole in one CUDA graph.

    The first ``warmup`` calls run eagerly on a side stream (they are real steps: CUDA graphs
    need warmed-up allocators and cuDNN plans), the next call captures the step into a graph
    with static input buffers, and every later call copies its batch into those buffers and
    replays the graph.  A batch of other shapes than the first one (the ragged last batch of a
    pass, which the search keeps as DARTS does) runs eagerly through the wrapped step: same
    math, its own N in the means and the metric counts, never captured (:class:`GraphRoute`).
    CUDA only.
    """

    def __init__(self, step: FirstOrderStep, warmup: int = 3):
        if step.device.type != "cuda":
            raise ValueError("GraphedStep needs a CUDA device")
        self.step, self.routes = step, GraphRoute(warmup)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[torch.Tensor, ...] | None = None

    def __call__(self, *batch: torch.Tensor) -> None:
        route = self.routes.route(batch)
        if route == "eager":
            self.step(*batch)
            return
        if route == "warmup":
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.step(*batch)
            torch.cuda.current_stream().wait_stream(side)
            return
        if route == "capture":
            self.static = tuple(t.clone() for t in batch)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.step(*self.static)
        for dst, src in zip(self.static, batch):
            dst.copy_(src, non_blocking=True)
        self.graph.replay()


def configure_backends(device: torch.device, cudnn_benchmark: bool = True) -> None:
    """Speed options of the search on CUDA: ``cudnn.benchmark`` (static shapes make it pay)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cudnn_benchmark)


__all__ = [
    "StepSettings",
    "FirstOrderStep",
    "GraphedStep",
    "GraphRoute",
    "configure_backends",
    "METRICS",
]
