"""The first-order step without host synchronisation (``--fast-step``, docs/speed.md): the
reference step's first-order math with every changing setting a device tensor, one seed or S
stacked, eager, compiled (``torch.compile``) or captured in a CUDA graph (:class:`GraphedStep`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim.optimizer import _get_scalar_dtype

from .distill import DIRECTIONS, distillation_loss, kd_active, recording_active
from .step import StepMetrics, StepSettings


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


class FirstOrderStep(StepMetrics):
    """The first-order step with no host synchronisation (CUDA graphs, ``torch.compile``).

    ``model``: a supernet, reference or fused, one seed or ``model.num_seeds`` stacked (inputs
    then carry a leading seed axis; each seed has its own loss, teacher rows, optimiser state
    and clipping).  ``cache``: a TeacherCache of as many seeds (None for DARTS).  The alphas'
    optimiser is ``torch.optim.Adam`` (``capturable`` on CUDA); SGD is written here because
    torch's foreach SGD reads a tensor learning rate on the host (``add_(alpha=-lr)``), which a
    CUDA graph cannot hold.
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
        # settings the loop changes between steps, on the device so that a graph can hold them
        self.lr = torch.zeros((), device=dev, dtype=self.weights[0].dtype)
        self.epoch = torch.zeros((), dtype=torch.int64, device=dev)
        self.kd_on = torch.zeros((), device=dev, dtype=torch.float32)  # 1.0 / 0.0: multiplies λ·KD
        self.recording = torch.zeros((), dtype=torch.bool, device=dev)
        self.lr_value = 0.0
        s = settings
        capturable = dev.type == "cuda"  # torch allows capturable Adam on accelerators only
        self.a_optimizer = torch.optim.Adam(
            self.alphas,
            lr=s.arch_learning_rate,
            betas=(s.arch_beta1, s.arch_beta2),
            eps=s.arch_eps,
            weight_decay=s.arch_weight_decay,
            capturable=capturable,
            fused=True,  # no host read of the step count, on the CPU too (the foreach path reads it)
        )
        scalar = _get_scalar_dtype()  # the dtype torch's own lazy initialisation gives the step count
        for a in self.alphas:  # Adam's state made now (it would be on the first step) so checkpoints can fill it
            self.a_optimizer.state[a] = {
                "step": torch.zeros((), dtype=scalar, device=dev),
                "exp_avg": torch.zeros_like(a, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(a, memory_format=torch.preserve_format),
            }
        self.momentum_buffer = [torch.zeros_like(w) for w in self.weights]
        self._init_metrics(dev)
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

    # Adam's state by role (the stacked checkpoints convert it seed by seed)
    @property
    def adam_step(self) -> torch.Tensor:
        return self.a_optimizer.state[self.alphas[0]]["step"]

    @torch.no_grad()
    def set_adam_step(self, value) -> None:
        for a in self.alphas:  # one count per alpha in torch's Adam; they step together
            self.a_optimizer.state[a]["step"].fill_(float(value))

    @property
    def exp_avg(self) -> list[torch.Tensor]:
        return [self.a_optimizer.state[a]["exp_avg"] for a in self.alphas]

    @property
    def exp_avg_sq(self) -> list[torch.Tensor]:
        return [self.a_optimizer.state[a]["exp_avg_sq"] for a in self.alphas]

    def set_epoch(self, epoch: int, lr: float) -> None:
        """Epoch (0-based) and its weight learning rate; the KD and recording switches (host side)."""
        s = self.settings
        self.epoch.fill_(int(epoch))
        self.lr.fill_(float(lr))
        self.lr_value = float(lr)  # the exact value, for checkpoints
        self.kd_on.fill_(1.0 if self.sd and kd_active(epoch, s.warmup_epochs) else 0.0)
        self.recording.fill_(bool(self.sd and recording_active(epoch, s.warmup_epochs, s.window)))

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
        # 1. alpha step (validation batch), weights frozen
        with _frozen(self.weights):
            loss_v, ce_v, _, logits_v, yv_ = self._objective(xv, yv, iv)
            grads = torch.autograd.grad(loss_v.sum(), self.alphas)
        for a, g in zip(self.alphas, grads):
            a.grad = g
        self.a_optimizer.step()
        self.a_optimizer.zero_grad(set_to_none=True)
        # 2. weight step (training batch), alphas frozen
        with _frozen(self.alphas):
            loss, ce, kd, logits, y_ = self._objective(x, y, idx)
            grads = torch.autograd.grad(loss.sum(), self.weights)
        self._count((loss_v, ce_v, logits_v, yv_), (ce, logits, y_), None if kd is None else kd * self.kd_on)
        grads = list(grads)
        if self.settings.grad_clip > 0:
            self._clip(grads)
        self._sgd(grads)

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
        """``torch.optim.SGD``'s formula (weight decay, momentum, optional Nesterov), learning rate
        a tensor; momentum buffers starting at zero equal SGD's first-step copy exactly."""
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

    def state_dict(self) -> dict[str, Any]:
        """Optimiser state: Adam's step count and moments, SGD's momentum buffers by weight name."""
        return {
            "adam_step": self.adam_step.detach().clone(),
            "exp_avg": [t.detach().clone() for t in self.exp_avg],
            "exp_avg_sq": [t.detach().clone() for t in self.exp_avg_sq],
            "momentum_buffer": {n: b.detach().clone() for n, b in zip(self.weight_names, self.momentum_buffer)},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_adam_step(state["adam_step"])
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, list(state["exp_avg"]) + list(state["exp_avg_sq"])):
            dst.copy_(src)
        for n, b in zip(self.weight_names, self.momentum_buffer):
            b.copy_(state["momentum_buffer"][n])

    @property
    def checkpoint_keys(self) -> dict[str, type]:
        if self.num_seeds > 1:
            return {"model": dict, "w_optimizer": dict, "a_optimizer": dict}
        return {"model": dict, "step": dict}

    def checkpoint_state(self, seed: int = 0) -> dict[str, Any]:
        """Seed ``seed``'s model, optimiser state and teacher cache; stacked seeds in the
        reference step's format (:func:`sd_darts.search.stacked.seed_checkpoint`), one by one."""
        if self.num_seeds > 1:
            from .stacked import seed_checkpoint

            return seed_checkpoint(self, seed, self.lr_value)
        state = {"model": self.model.state_dict(), "step": self.state_dict()}
        if self.cache is not None:
            state["teacher_cache"] = self.cache.state_dict()
        return state

    def load_checkpoint_state(self, seed: int, state: dict[str, Any]) -> None:
        if self.num_seeds > 1:
            from .stacked import load_seed_checkpoint

            load_seed_checkpoint(self, seed, state)
            return
        self.model.load_state_dict(state["model"])
        self.load_state_dict(state["step"])
        if self.cache is not None:
            self.cache.load_state_dict(state["teacher_cache"])


class GraphRoute:
    """:class:`GraphedStep`'s bookkeeping: ``route(batch)`` says what to do with a batch.  The
    first batch fixes the static shapes; batches of those shapes give ``"warmup"`` ``warmup``
    times, ``"capture"`` once, then ``"replay"``; other shapes (the ragged last batch of a
    pass) give ``"eager"`` and count for nothing."""

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
    """A :class:`FirstOrderStep` captured whole in one CUDA graph and replayed (CUDA only).

    ``warmup`` eager calls on a side stream (real steps: allocators and cuDNN plans warm up),
    one capture into static input buffers, then copy-in and replay; a batch of other shapes (the
    ragged last batch) runs eagerly through the wrapped step.  Everything else of the step
    interface is the wrapped step's.
    """

    def __init__(self, step: FirstOrderStep, warmup: int = 3):
        if step.device.type != "cuda":
            raise ValueError("GraphedStep needs a CUDA device")
        self.step, self.routes = step, GraphRoute(warmup)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[torch.Tensor, ...] | None = None

    def __getattr__(self, name: str):
        return getattr(self.step, name)

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


__all__ = ["FirstOrderStep", "GraphedStep", "GraphRoute", "configure_backends"]
