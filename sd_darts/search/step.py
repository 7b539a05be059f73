"""The search step (paper Algorithms 1–2, Eq. 2): one alpha step, then one weight step.

Every step has one interface — ``set_epoch(epoch, lr)``, ``step(x, y, idx, xv, yv, iv)``,
``reset_metrics()``, ``read_metrics()`` (one dict of sums per seed, the epoch's one host
synchronisation), ``checkpoint_state(seed)`` / ``load_checkpoint_state(seed, state)``.  Here:
the reference step (DARTS's loop body, first or second order) and what all steps share; the
first-order step without host synchronisation is :mod:`sd_darts.search.fast`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .architect import Architect
from .distill import SearchObjective

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


def epoch_metrics(sums: dict[str, float], sd_lambda: float, lr: float) -> dict[str, float]:
    """One seed's logged metrics of an epoch from the sums of ``read_metrics``."""
    nt, nv = max(sums["train_count"], 1), max(sums["valid_count"], 1)
    return {
        "train/loss": sums["train_loss"] / nt,
        "train/objective": (sums["train_loss"] + sd_lambda * sums["kd_loss"]) / nt,
        "train/acc": 100.0 * sums["train_correct"] / nt,
        "valid/loss": sums["valid_ce"] / nv,
        "valid/objective": sums["valid_loss"] / nv,
        "valid/acc": 100.0 * sums["valid_correct"] / nv,
        "kd_loss": sums["kd_loss"] / nt,
        "lr": lr,
    }


@dataclass
class StepSettings:
    """The numeric settings of a step (:meth:`from_config`: a SearchConfig's; defaults Table 1's)."""

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


class StepMetrics:
    """Per-seed metric sums kept on the device (float64) until :meth:`read_metrics`."""

    num_seeds: int = 1

    def _init_metrics(self, device: torch.device) -> None:
        self.metrics = {k: torch.zeros(self.num_seeds, dtype=torch.float64, device=device) for k in METRICS}

    def reset_metrics(self) -> None:
        for t in self.metrics.values():
            t.zero_()

    def read_metrics(self) -> list[dict[str, float]]:
        """The epoch's sums, one dict per seed (one host synchronisation): ``train_loss`` (CE·n),
        ``train_correct``, ``valid_loss`` (the alpha objective·n), ``valid_ce``, ``valid_correct``,
        ``kd_loss`` (λ-free KD·n of the weight steps), ``train_count``, ``valid_count``."""
        values = torch.stack(list(self.metrics.values())).t().tolist()  # (S, metrics)
        return [dict(zip(self.metrics, row)) for row in values]

    @torch.no_grad()
    def _count(self, valid, train, kd) -> None:
        """Add one step: ``valid`` = (objective, CE, logits, targets), ``train`` = (CE, logits,
        targets), per seed (S,) / (S, N, C) / (S, N); ``kd`` (S,) already switched by the epoch."""
        m = self.metrics
        loss_v, ce_v, logits_v, yv = valid
        ce, logits, y = train
        n_v, n = yv.shape[-1], y.shape[-1]
        m["valid_loss"].add_(loss_v.detach() * n_v)
        m["valid_ce"].add_(ce_v.detach() * n_v)
        m["valid_correct"].add_((logits_v.argmax(-1) == yv).sum(-1))
        m["valid_count"].add_(n_v)
        m["train_loss"].add_(ce.detach() * n)
        m["train_correct"].add_((logits.argmax(-1) == y).sum(-1))
        m["train_count"].add_(n)
        if kd is not None:
            m["kd_loss"].add_(kd.detach() * n)


def reference_step(
    architect: Architect,
    objective: SearchObjective,
    w_optimizer: torch.optim.Optimizer,
    train_batch,
    valid_batch,
    lr: float,
    grad_clip: float,
    track_kd: bool = False,
):
    """DARTS's loop body: the architect's alpha step on the alpha-half batch, then the weight
    step on the weight-half batch (recording the teacher, clipping the gradient norm when
    ``grad_clip`` > 0).  Returns ``(loss, logits, v_loss, v_logits)``."""
    v_loss, v_logits = architect.step(train_batch, valid_batch, lr, w_optimizer)
    w_optimizer.zero_grad(set_to_none=True)
    loss, logits = objective(*train_batch, record=True, track_kd=track_kd)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(architect.model.weights(), grad_clip)
    w_optimizer.step()
    return loss, logits, v_loss, v_logits


class ReferenceStep(StepMetrics):
    """The reference step: :class:`~sd_darts.search.architect.Architect` (Adam on the alphas, first or
    second order) and ``torch.optim.SGD`` on the weights, one seed."""

    def __init__(self, model: torch.nn.Module, cfg: Any, cache=None):
        self.model, self.cache = model, cache
        self.grad_clip = cfg.grad_clip
        self.objective = SearchObjective(model, cfg, cache)
        self.w_optimizer = torch.optim.SGD(
            model.weights(),
            lr=cfg.learning_rate,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov and cfg.momentum > 0,
        )
        self.architect = Architect.from_config(model, self.objective, cfg)
        self.lr = float(cfg.learning_rate)
        self._init_metrics(model.arch_parameters()[0].device)

    def set_epoch(self, epoch: int, lr: float) -> None:
        self.objective.set_epoch(epoch)
        self.lr = float(lr)
        for group in self.w_optimizer.param_groups:
            group["lr"] = self.lr

    def __call__(self, x, y, idx, xv, yv, iv) -> None:
        self.objective.kd_sum = torch.zeros((), dtype=torch.float64, device=x.device)
        loss, logits, v_loss, v_logits = reference_step(
            self.architect, self.objective, self.w_optimizer, (x, y, idx), (xv, yv, iv), self.lr, self.grad_clip, True
        )
        logits, v_logits = logits.detach(), v_logits.detach()
        kd = self.objective.kd_sum / x.shape[0] if self.objective.kd_on else None
        valid = (v_loss, F.cross_entropy(v_logits, yv), v_logits, yv)
        train = (F.cross_entropy(logits, y), logits, y)
        self._count(  # one seed: its seed axis added
            [t.unsqueeze(0) for t in valid], [t.unsqueeze(0) for t in train], None if kd is None else kd.unsqueeze(0)
        )

    def checkpoint_state(self, seed: int = 0) -> dict[str, Any]:
        """The run's model and optimiser state (torch's own state dicts) and teacher cache."""
        state = {
            "model": self.model.state_dict(),
            "w_optimizer": self.w_optimizer.state_dict(),
            "a_optimizer": self.architect.state_dict(),
        }
        if self.cache is not None:
            state["teacher_cache"] = self.cache.state_dict()
        return state

    def load_checkpoint_state(self, seed: int, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.architect.load_state_dict(state["a_optimizer"])
        if self.cache is not None:
            self.cache.load_state_dict(state["teacher_cache"])

    checkpoint_keys = {"model": dict, "w_optimizer": dict, "a_optimizer": dict}


__all__ = ["METRICS", "StepSettings", "StepMetrics", "epoch_metrics", "reference_step", "ReferenceStep"]
