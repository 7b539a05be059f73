"""Sharpness of the supernet (paper Fig. 2, §3.2 Remark 1): the dominant eigenvalue of the
Hessian of the validation cross-entropy with respect to all alphas, weights fixed, as in
RobustDARTS (Zela et al., 2020) and SDARTS (Chen & Hsieh, 2020).

Hessian-vector products by double backward, solved by Lanczos (default) or power iteration;
:func:`full_hessian` builds H exactly for tests.  The model's mode and buffers are restored and
no ``.grad`` accumulates.  The definition and the solvers: docs/method.md, "Sharpness".
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Eigen",
    "arch_parameters",
    "dominant_eigen",
    "dominant_eigenvalue",
    "fixed_batch",
    "full_hessian",
    "hessian_vector_product_fn",
]


def arch_parameters(model: nn.Module) -> list[torch.Tensor]:
    """The supernet's alphas (``model.arch_parameters()``), checked to be non-empty."""
    getter = getattr(model, "arch_parameters", None)
    if getter is None:
        raise TypeError(f"{type(model).__name__} has no arch_parameters(); it is not a supernet")
    params = list(getter())
    if not params:
        raise ValueError(f"{type(model).__name__}.arch_parameters() is empty")
    return params


@contextlib.contextmanager
def _preserved_state(model: nn.Module, train_mode: bool) -> Iterator[None]:
    """Run in the requested mode, then restore the mode and every buffer (BN statistics)."""
    was_training = model.training
    saved = {name: buf.detach().clone() for name, buf in model.named_buffers()}
    model.train(train_mode)
    try:
        yield
    finally:
        with torch.no_grad():
            for name, buf in model.named_buffers():
                if name in saved:
                    buf.copy_(saved[name])
        model.train(was_training)


def _validation_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = model(inputs)
    if isinstance(logits, (tuple, list)):  # (logits, aux) style outputs
        logits = logits[0]
    return F.cross_entropy(logits, targets)


def _flat_grad(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    flat = []
    for g, p in zip(grads, params):
        flat.append(torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1))
    return torch.cat(flat)


def hessian_vector_product_fn(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """Return ``(hvp, n)``: ``hvp(v)`` = H v for flat vectors ``v`` of length ``n``.

    The gradient graph is built once; every product is one extra backward pass.  The caller
    is responsible for the model's mode (see :func:`dominant_eigenvalue`).
    """
    params = arch_parameters(model)
    loss = _validation_loss(model, inputs, targets)
    grad = _flat_grad(loss, params)
    n = grad.numel()
    if not grad.requires_grad:  # the loss does not depend on alpha at second order
        return (lambda v: torch.zeros_like(v)), n

    def hvp(v: torch.Tensor) -> torch.Tensor:
        v = v.to(device=grad.device, dtype=grad.dtype)
        prods = torch.autograd.grad(grad, params, grad_outputs=v, retain_graph=True, allow_unused=True)
        return torch.cat(
            [torch.zeros_like(p).reshape(-1) if h is None else h.reshape(-1) for h, p in zip(prods, params)]
        ).detach()

    return hvp, n


def full_hessian(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, train_mode: bool = True
) -> torch.Tensor:
    """The exact Hessian (n x n, n = number of alphas), one row per Hessian-vector product.

    For tiny supernets and tests; use :func:`dominant_eigenvalue` for real ones.
    """
    with _preserved_state(model, train_mode):
        hvp, n = hessian_vector_product_fn(model, inputs, targets)
        ref = arch_parameters(model)[0]
        eye = torch.eye(n, device=ref.device, dtype=ref.dtype)
        rows = [hvp(eye[i]) for i in range(n)]
    return torch.stack(rows)


def _start_vector(n: int, seed: int, like: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(n, generator=gen, dtype=torch.float64)
    v = v / v.norm()
    return v.to(device=like.device, dtype=like.dtype)


@dataclass(frozen=True)
class Eigen:
    """A dominant-eigenvalue estimate and its certificate.

    ``residual`` is ``‖H y − value·y‖`` for the returned unit vector ``y`` (Lanczos: the bound
    ``|β_k s_k|``; power iteration: computed), so ``value`` is within ``residual`` of an
    eigenvalue of H; ``converged`` says whether ``residual <= tol · |value|`` was reached
    within the allowed products (otherwise the value is only a lower bound of the largest one).
    The tolerance is relative to the eigenvalue itself: the dominant eigenvalue of a small
    supernet's alpha Hessian can be 1e-3, where an absolute tolerance would accept anything.
    """

    value: float
    residual: float
    iterations: int
    converged: bool


def _lanczos(hvp: Callable, n: int, v0: torch.Tensor, iters: int, tol: float) -> Eigen:
    """Largest eigenvalue by Lanczos with full re-orthogonalisation."""
    basis = [v0]
    alphas: list[float] = []
    betas: list[float] = []
    theta, residual, done = 0.0, float("inf"), 0
    steps = min(iters, n)
    for k in range(steps):
        w = hvp(basis[k])
        a = float(torch.dot(w, basis[k]))
        alphas.append(a)
        # Full re-orthogonalisation (twice is enough) against every Lanczos vector so far.
        Q = torch.stack(basis, dim=1)
        for _ in range(2):
            w = w - Q @ (Q.T @ w)
        b = float(w.norm())
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            T = T + torch.diag(off, 1) + torch.diag(off, -1)
        evals, evecs = torch.linalg.eigh(T)
        theta = float(evals[-1])
        # |H y - theta y| = |b * s_k| for the Ritz vector y: a certified error bound.
        residual = abs(b * float(evecs[-1, -1]))
        done = k + 1
        scale = abs(theta)  # relative: Hessians of small supernets have eigenvalues far below 1
        if residual <= tol * scale or b <= 1e-12 * max(scale, 1e-30):
            return Eigen(theta, residual, done, True)
        betas.append(b)
        basis.append(w / b)
    # Lanczos on the whole space (n products) is exact: the Krylov space is all of it.
    return Eigen(theta, residual, done, done == n)


def _power(hvp: Callable, v0: torch.Tensor, iters: int, tol: float, shift: float = 0.0) -> Eigen:
    """Power iteration on H - shift*I; the Rayleigh quotient of H (shift removed) and its residual."""
    v = v0
    lam, done, converged = 0.0, 0, False
    for k in range(max(1, iters)):
        w = hvp(v) - shift * v
        new = float(torch.dot(v, w))
        norm = float(w.norm())
        done = k + 1
        if norm == 0.0:
            return Eigen(shift, 0.0, done, True)
        v = w / norm
        converged = abs(new - lam) <= tol * abs(new)
        lam = new
        if converged:
            break
    value = lam + shift
    residual = float((hvp(v) - value * v).norm())
    return Eigen(value, residual, done, converged and residual <= max(tol, 1e-3) * abs(value))


def dominant_eigen(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    iters: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
    method: str = "lanczos",
    train_mode: bool = True,
) -> Eigen:
    """Dominant (largest) eigenvalue of the Hessian of the mean validation cross-entropy of
    ``model(inputs)`` with respect to all of ``model.arch_parameters()`` (paper Fig. 2), with
    its residual (:class:`Eigen`).

    ``iters`` bounds the number of Hessian-vector products, ``tol`` is the relative residual
    at which the solver stops, ``seed`` fixes the start vector.  ``method`` is ``lanczos``
    (default) or ``power``.  The model's mode and buffers are left as they were.
    """
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    with _preserved_state(model, train_mode):
        hvp, n = hessian_vector_product_fn(model, inputs, targets)
        v0 = _start_vector(n, seed, arch_parameters(model)[0])
        if method == "lanczos":
            return _lanczos(hvp, n, v0, iters, tol)
        eig = _power(hvp, v0, iters, tol)
        if eig.value < 0:
            # The largest-|lambda| eigenvalue is negative: shift the spectrum so the largest
            # algebraic eigenvalue becomes the dominant one of H - lam*I.
            eig = _power(hvp, v0, iters, tol, shift=eig.value)
        return eig


def dominant_eigenvalue(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, **kwargs) -> float:
    """The value of :func:`dominant_eigen` (same arguments)."""
    return dominant_eigen(model, inputs, targets, **kwargs).value


def fixed_batch(dataset, batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One seeded batch of ``(inputs, targets)`` from ``dataset`` (items ``(image, label, ...)``).

    Fig. 2 compares epochs and methods on the same batch: the sample indices come from a
    generator seeded with ``seed`` and any random augmentation runs with the torch, Python and
    NumPy generators seeded with ``seed`` and restored afterwards, so the run's own RNG streams
    are not disturbed and every call returns identical tensors.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("cannot draw a Hessian batch from an empty dataset")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    idx = torch.randperm(n, generator=gen)[: min(batch_size, n)].tolist()
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % (2**32))
            items = [dataset[i] for i in idx]
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    inputs = torch.stack([torch.as_tensor(item[0]) for item in items])
    targets = torch.as_tensor([int(item[1]) for item in items], dtype=torch.long)
    return inputs, targets
