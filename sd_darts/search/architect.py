"""The architect: the alpha update of DARTS (Liu et al., 2019, §2.3), which SD-DARTS keeps
(paper Eq. 2, Algorithms 1–2); the objective passed in already holds the KD term.

First order by default; second order (``unrolled=True``, DARTS Eq. 7–8) through
``torch.func.functional_call``, never a copy of the supernet.  Both leave its BatchNorm running
statistics as quark0/darts ``cnn/architect.py`` does, and the teacher is recorded from the real
weights.  The formulas and the BatchNorm account: docs/method.md, "The architect".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

# objective(inputs, targets, indices, params=None, record=False) -> (loss, logits)
Objective = Callable[..., tuple[torch.Tensor, torch.Tensor]]


class Architect:
    """Alpha optimiser (Adam) and the first/second-order DARTS alpha gradient."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        *,
        arch_learning_rate: float,
        arch_weight_decay: float,
        betas: tuple[float, float] = (0.5, 0.999),
        unrolled: bool = False,
        finite_difference_r: float = 0.01,
    ):
        self.model = model
        self.objective = objective
        self.unrolled = unrolled
        self.finite_difference_r = finite_difference_r
        self.alphas = list(model.arch_parameters())
        self.optimizer = torch.optim.Adam(
            self.alphas, lr=arch_learning_rate, betas=betas, weight_decay=arch_weight_decay
        )

    @classmethod
    def from_config(cls, model: nn.Module, objective: Objective, cfg) -> Architect:
        """The architect of a search's settings (``arch_*`` and ``unrolled`` of a SearchConfig)."""
        return cls(
            model,
            objective,
            arch_learning_rate=cfg.arch_learning_rate,
            arch_weight_decay=cfg.arch_weight_decay,
            betas=(cfg.arch_beta1, cfg.arch_beta2),
            unrolled=cfg.unrolled,
        )

    def step(self, train_batch, valid_batch, eta: float, w_optimizer: torch.optim.Optimizer):
        """One alpha update; returns ``(valid_loss, valid_logits)`` of the forward pass used.

        ``train_batch`` / ``valid_batch`` are ``(inputs, targets, indices)`` on the model's
        device; ``eta`` is the weight learning rate of this step (second order only).
        """
        if self.unrolled:
            grads = self._unrolled_gradients(train_batch, valid_batch, eta, w_optimizer)
            # the supernet's own outputs: recorded for the teacher, logged
            with torch.no_grad(), self._statistics_kept():
                loss, logits = self.objective(*valid_batch, record=True)
        else:
            loss, logits = self.objective(*valid_batch, record=True)
            grads = torch.autograd.grad(loss, self.alphas)
        for alpha, grad in zip(self.alphas, grads):
            alpha.grad = grad
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach(), logits.detach()

    # -- second order --------------------------------------------------------------------

    @contextlib.contextmanager
    def _statistics_kept(self):
        """The supernet's buffers (BatchNorm running statistics) restored after a forward that
        DARTS does not run (no gradient through it: the restore would break a backward)."""
        saved = [(b, b.clone()) for b in self.model.buffers()]
        try:
            yield
        finally:
            with torch.no_grad():
                for b, old in saved:
                    b.copy_(old)

    def _buffer_copies(self) -> dict[str, torch.Tensor]:
        """Copies of the supernet's buffers, for a forward DARTS runs on a separate network
        (``_construct_model_from_theta``): train-mode BatchNorm updates the copies only."""
        return {name: b.clone() for name, b in self.model.named_buffers()}

    def _weight_items(self):
        return list(self.model.named_weights())

    @staticmethod
    def _sgd_settings(w_optimizer) -> tuple[float, float, bool]:
        group = w_optimizer.param_groups[0]
        if group.get("dampening", 0.0):
            raise ValueError("the unrolled step assumes SGD without dampening, as the search uses")
        return group.get("momentum", 0.0), group.get("weight_decay", 0.0), bool(group.get("nesterov", False))

    def _unrolled_weights(self, train_batch, eta: float, w_optimizer) -> dict[str, torch.Tensor]:
        """The weights after the SGD step ``w_optimizer`` would take next (docs/method.md)."""
        items = self._weight_items()
        weights = [w for _, w in items]
        loss, _ = self.objective(*train_batch, record=False)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        momentum, weight_decay, nesterov = self._sgd_settings(w_optimizer)
        unrolled = {}
        with torch.no_grad():
            for (name, w), g in zip(items, grads):
                d = (torch.zeros_like(w) if g is None else g) + weight_decay * w
                buf = w_optimizer.state.get(w, {}).get("momentum_buffer")
                if momentum:
                    new_buf = d if buf is None else momentum * buf + d
                    step = d + momentum * new_buf if nesterov else new_buf
                else:
                    step = d
                unrolled[name] = (w - eta * step).requires_grad_(True)
        return unrolled

    def _unrolled_gradients(self, train_batch, valid_batch, eta, w_optimizer) -> list[torch.Tensor]:
        unrolled = self._unrolled_weights(train_batch, eta, w_optimizer)
        names = list(unrolled)
        params = {**unrolled, **self._buffer_copies()}  # DARTS: a forward of the unrolled copy
        loss, _ = self.objective(*valid_batch, params=params, record=False)
        grads = torch.autograd.grad(loss, self.alphas + [unrolled[n] for n in names], allow_unused=True)
        n_alpha = len(self.alphas)
        dalpha = [torch.zeros_like(a) if g is None else g for a, g in zip(self.alphas, grads[:n_alpha])]
        dw = [torch.zeros_like(unrolled[n]) if g is None else g for n, g in zip(names, grads[n_alpha:])]
        implicit = self._hessian_vector_product(dict(zip(names, dw)), train_batch)
        momentum, _, nesterov = self._sgd_settings(w_optimizer)
        scale = eta * (1.0 + momentum) if nesterov else eta  # dw'/d(-eta grad): 1 + m for Nesterov
        return [da - scale * ih for da, ih in zip(dalpha, implicit)]

    def _hessian_vector_product(self, vector: dict[str, torch.Tensor], train_batch) -> list[torch.Tensor]:
        """``∇²_{α,w} L_train(w, α) · v`` by central differences (DARTS Eq. 8)."""
        norm = torch.cat([v.reshape(-1) for v in vector.values()]).norm()
        r = self.finite_difference_r / norm.clamp_min(1e-12)
        weights = dict(self.model.named_weights())
        out = []
        for sign in (1.0, -1.0):
            shifted = {n: (weights[n] + sign * r * vector[n]).detach() for n in vector}
            loss, _ = self.objective(*train_batch, params=shifted, record=False)
            grads = torch.autograd.grad(loss, self.alphas, allow_unused=True)
            out.append([torch.zeros_like(a) if g is None else g for a, g in zip(self.alphas, grads)])
        return [(gp - gn) / (2 * r) for gp, gn in zip(*out)]

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state)
