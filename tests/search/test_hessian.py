"""Dominant Hessian eigenvalue w.r.t. the alphas (paper Fig. 2): the Hessian-vector-product
solvers are cross-checked against the exact Hessian and torch.linalg.eigvalsh."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sd_darts.search import hessian


class ToyMixedOp(nn.Module):
    """A DARTS-style mixed edge: softmax(alpha)-weighted sum of candidate operations."""

    def __init__(self, C: int):
        super().__init__()
        self.ops = nn.ModuleList(
            [
                nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, 3, padding=1, bias=False), nn.BatchNorm2d(C, affine=False)),
                nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.BatchNorm2d(C, affine=False)),
                nn.Identity(),
            ]
        )

    def forward(self, x, weights):
        out = weights[0] * x * 0.0  # the "none" op keeps its column in the softmax
        for w, op in zip(weights[1:], self.ops):
            out = out + w * op(x)
        return out


class ToySupernet(nn.Module):
    """Two cells of two edges each; alphas of shape (2, 4) per cell type, like DARTS in small."""

    def __init__(self, C: int = 4, num_classes: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        self.normal = nn.ModuleList([ToyMixedOp(C) for _ in range(2)])
        self.reduce = nn.ModuleList([ToyMixedOp(C) for _ in range(2)])
        self.head = nn.Linear(C, num_classes)
        self.alphas_normal = nn.Parameter(1e-1 * torch.randn(2, 4))
        self.alphas_reduce = nn.Parameter(1e-1 * torch.randn(2, 4))

    def arch_parameters(self):
        return [self.alphas_normal, self.alphas_reduce]

    def forward(self, x):
        x = self.stem(x)
        wn = F.softmax(self.alphas_normal, dim=-1)
        for i, edge in enumerate(self.normal):
            x = edge(x, wn[i])
        x = F.avg_pool2d(x, 2)
        wr = F.softmax(self.alphas_reduce, dim=-1)
        for i, edge in enumerate(self.reduce):
            x = edge(x, wr[i])
        return self.head(x.mean(dim=(2, 3)))


def _toy(seed=0):
    torch.manual_seed(seed)
    model = ToySupernet()
    x = torch.randn(8, 3, 8, 8)
    y = torch.randint(0, 5, (8,))
    return model, x, y


def _exact_top(model, x, y, train_mode=True):
    H = hessian.full_hessian(model, x.double(), y, train_mode=train_mode)
    return H, float(torch.linalg.eigvalsh(H)[-1])


def test_full_hessian_is_symmetric_and_matches_solvers_on_toy_supernet():
    model, x, y = _toy()
    model.double()
    H, top = _exact_top(model, x, y)
    assert H.shape == (16, 16)
    torch.testing.assert_close(H, H.T, rtol=1e-8, atol=1e-10)
    assert top > 0
    lz = hessian.dominant_eigenvalue(model, x.double(), y, iters=16, tol=1e-10)
    pw = hessian.dominant_eigenvalue(model, x.double(), y, iters=2000, tol=1e-12, method="power")
    assert lz == pytest.approx(top, rel=1e-6)
    assert pw == pytest.approx(top, rel=1e-4)


def test_float32_lanczos_agrees_with_exact_float64():
    model, x, y = _toy(1)
    lz32 = hessian.dominant_eigenvalue(model, x, y, iters=50, tol=1e-5)
    model.double()
    _, top = _exact_top(model, x, y)
    assert lz32 == pytest.approx(top, rel=1e-3)


def test_eval_mode_uses_running_statistics_and_differs_from_train_mode():
    model, x, y = _toy(2)
    model.double()
    with torch.no_grad():  # give the BN layers non-trivial running statistics
        model.train()
        for _ in range(3):
            model(torch.randn(8, 3, 8, 8, dtype=torch.float64) * 2 + 1)
    _, top_eval = _exact_top(model, x, y, train_mode=False)
    lz_eval = hessian.dominant_eigenvalue(model, x.double(), y, tol=1e-10, train_mode=False)
    _, top_train = _exact_top(model, x, y, train_mode=True)
    assert lz_eval == pytest.approx(top_eval, rel=1e-6)
    assert top_eval != pytest.approx(top_train, rel=1e-3)


def test_no_side_effects_and_deterministic():
    model, x, y = _toy(3)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = hessian.dominant_eigenvalue(model, x, y)
    b = hessian.dominant_eigenvalue(model, x, y)
    assert a == b
    assert not model.training  # mode restored
    for k, v in model.state_dict().items():  # BN running stats and alphas untouched
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())  # nothing accumulated


def test_bad_arguments():
    model, x, y = _toy()
    with pytest.raises(ValueError, match="method"):
        hessian.dominant_eigenvalue(model, x, y, method="arnoldi")
    with pytest.raises(ValueError, match="iters"):
        hessian.dominant_eigenvalue(model, x, y, iters=0)
    with pytest.raises(TypeError, match="arch_parameters"):
        hessian.dominant_eigenvalue(nn.Linear(3, 2), torch.randn(2, 3), torch.tensor([0, 1]))


class SoftmaxRegression(nn.Module):
    """logits = X A: the Hessian of the mean CE w.r.t. A is known in closed form."""

    def __init__(self, A: torch.Tensor):
        super().__init__()
        self.A = nn.Parameter(A.clone())

    def arch_parameters(self):
        return [self.A]

    def forward(self, x):
        return x @ self.A


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    d=st.integers(1, 4),
    k=st.integers(2, 4),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.01, 5.0),
)
def test_matches_closed_form_softmax_regression_hessian(n, d, k, seed, scale):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64) * scale
    A = torch.randn(d, k, generator=gen, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=gen)
    # H = 1/n sum_i (x_i x_i^T) kron (diag p_i - p_i p_i^T), indexed like A.reshape(-1) (row-major).
    P = torch.softmax(X @ A, dim=1)
    H = torch.zeros(d * k, d * k, dtype=torch.float64)
    for i in range(n):
        H += torch.kron(torch.outer(X[i], X[i]), torch.diag(P[i]) - torch.outer(P[i], P[i]))
    H /= n
    model = SoftmaxRegression(A)
    torch.testing.assert_close(hessian.full_hessian(model, X, y), H, rtol=1e-9, atol=1e-12)
    top = float(torch.linalg.eigvalsh(H)[-1])
    got = hessian.dominant_eigenvalue(model, X, y, iters=d * k, tol=1e-12)
    assert got == pytest.approx(top, rel=1e-7, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), seed=st.integers(0, 2**31 - 1), shift=st.floats(-10, 10))
def test_solvers_find_largest_algebraic_eigenvalue_of_symmetric_matrices(n, seed, shift):
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=gen, dtype=torch.float64)
    M = (M + M.T) / 2 + shift * torch.eye(n, dtype=torch.float64)
    top = float(torch.linalg.eigvalsh(M)[-1])
    v0 = hessian._start_vector(n, 0, M)
    lz = hessian._lanczos(lambda v: M @ v, n, v0, iters=n, tol=1e-12)
    assert lz.value == pytest.approx(top, rel=1e-8, abs=1e-8)
    # Lanczos over the whole space is exact, and its residual certifies the value.
    assert lz.converged and lz.iterations <= n
    assert abs(lz.value - top) <= lz.residual + 1e-8


def test_lanczos_stopped_early_reports_an_uncertified_lower_bound():
    gen = torch.Generator().manual_seed(3)
    M = torch.randn(40, 40, generator=gen, dtype=torch.float64)
    M = (M + M.T) / 2
    top = float(torch.linalg.eigvalsh(M)[-1])
    lz = hessian._lanczos(lambda v: M @ v, 40, hessian._start_vector(40, 0, M), iters=3, tol=1e-10)
    assert lz.iterations == 3 and not lz.converged
    assert lz.value <= top + 1e-12  # a Ritz value never exceeds the largest eigenvalue
    assert lz.residual > 1e-10 * max(1.0, abs(lz.value))


def test_power_iteration_shifts_when_the_largest_magnitude_eigenvalue_is_negative():
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    M = Q @ torch.diag(torch.tensor([-9.0, -3.0, -1.0, 0.5, 1.0, 2.0], dtype=torch.float64)) @ Q.T
    v0 = hessian._start_vector(6, 0, M)
    lam = hessian._power(lambda v: M @ v, v0, iters=5000, tol=1e-13).value
    assert lam == pytest.approx(-9.0, rel=1e-6)  # plain power iteration: largest |lambda|
    # dominant_eigenvalue(method="power") then shifts by that eigenvalue: largest algebraic one.
    shifted = hessian._power(lambda v: M @ v, v0, iters=5000, tol=1e-13, shift=lam)
    assert shifted.value == pytest.approx(2.0, rel=1e-6) and shifted.residual < 1e-5


class AugmentedDataset(torch.utils.data.Dataset):
    def __init__(self):
        self.data = torch.arange(40, dtype=torch.float32).reshape(20, 2)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        noise = torch.rand(2) + random.random() + float(np.random.rand())  # every RNG stream
        return self.data[i] + noise, i % 3, i


def test_fixed_batch_is_reproducible_and_leaves_global_rng_alone():
    ds = AugmentedDataset()
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    expect = (torch.rand(1), random.random(), np.random.rand())
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    x1, y1 = hessian.fixed_batch(ds, 8, seed=7)
    after = (torch.rand(1), random.random(), np.random.rand())
    assert torch.equal(expect[0], after[0]) and expect[1:] == after[1:]
    x2, y2 = hessian.fixed_batch(ds, 8, seed=7)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (8, 2) and y1.dtype == torch.long
    x3, _ = hessian.fixed_batch(ds, 8, seed=8)
    assert not torch.equal(x1, x3)
    xa, _ = hessian.fixed_batch(ds, 100, seed=0)
    assert xa.shape[0] == 20


def test_darts_supernet_lanczos_matches_exact_hessian():
    """The real DARTS supernet (one node per cell, so that the exact Hessian stays cheap: alphas
    2 x (2, 8)); its spectrum has a negative eigenvalue larger in magnitude than the top one, so
    this also checks that the *largest* eigenvalue, not the largest |eigenvalue|, is returned.
    (With the paper's 4 nodes, 224 alphas, the same check agrees to 1e-15 but takes a minute.)"""
    from sd_darts.spaces.darts.supernet import DartsSupernet

    torch.manual_seed(0)
    model = DartsSupernet(C=4, num_classes=10, layers=3, steps=1, multiplier=1).double()
    with torch.no_grad():
        for a in model.arch_parameters():
            a.normal_(0, 0.5)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 10, (4,))
    H = hessian.full_hessian(model, x, y)
    assert H.shape == (32, 32)
    torch.testing.assert_close(H, H.T, rtol=1e-8, atol=1e-12)
    evals = torch.linalg.eigvalsh(H)
    assert -evals[0] > evals[-1] > 0
    got = hessian.dominant_eigenvalue(model, x, y, tol=1e-10)
    assert got == pytest.approx(float(evals[-1]), rel=1e-8)
    # the search's setting: 20 Lanczos steps in float32
    model.float()
    assert hessian.dominant_eigenvalue(model, x.float(), y, iters=20) == pytest.approx(float(evals[-1]), rel=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SD_DARTS_SLOW_TESTS") != "1", reason="about a minute; set SD_DARTS_SLOW_TESTS=1")
def test_full_size_darts_alphas_224_lanczos_matches_exact_hessian():
    """The paper's cell (4 nodes: 2 x (14, 8) = 224 alphas) on a tiny supernet: 224 exact rows."""
    from sd_darts.spaces.darts.supernet import DartsSupernet

    torch.manual_seed(0)
    model = DartsSupernet(C=4, num_classes=10, layers=3).double()
    with torch.no_grad():
        for a in model.arch_parameters():
            a.normal_(0, 0.5)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 10, (4,))
    H = hessian.full_hessian(model, x, y)
    assert H.shape == (224, 224)
    top = float(torch.linalg.eigvalsh(H)[-1])
    assert hessian.dominant_eigenvalue(model, x, y, iters=224, tol=1e-12) == pytest.approx(top, rel=1e-9)
    model.float()
    assert hessian.dominant_eigenvalue(model, x.float(), y, iters=20) == pytest.approx(top, rel=1e-3)


def test_lanczos_tolerance_is_relative_to_a_small_eigenvalue():
    """A dominant eigenvalue of 1e-3 (small supernets) is certified to tol relative to itself."""
    gen = torch.Generator().manual_seed(5)
    Q, _ = torch.linalg.qr(torch.randn(30, 30, generator=gen, dtype=torch.float64))
    spectrum = torch.linspace(-1e-3, 1e-3, 30, dtype=torch.float64)
    M = Q @ torch.diag(spectrum) @ Q.T
    eig = hessian._lanczos(lambda v: M @ v, 30, hessian._start_vector(30, 0, M), iters=30, tol=1e-2)
    assert eig.converged and eig.iterations > 1
    assert eig.residual <= 1e-2 * abs(eig.value) and abs(eig.value - 1e-3) <= eig.residual + 1e-15
