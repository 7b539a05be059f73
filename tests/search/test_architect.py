"""The second-order architect against the exact hypergradient on a small model (float64)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sd_darts.search.architect import Architect


class ToySupernet(nn.Module):
    """Two candidate heads mixed by softmax(alpha): the supernet contract in miniature."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(5, 6)
        self.head_a = nn.Linear(6, 3)
        self.head_b = nn.Linear(6, 3)
        self.alpha = nn.Parameter(torch.randn(2))

    def forward(self, x):
        h = torch.tanh(self.stem(x))
        w = F.softmax(self.alpha, dim=0)
        return w[0] * self.head_a(h) + w[1] * self.head_b(h)

    def arch_parameters(self):
        return [self.alpha]

    def named_weights(self):
        return [(n, p) for n, p in self.named_parameters() if n != "alpha"]

    def weights(self):
        return [p for _, p in self.named_weights()]


def objective_for(model):
    def objective(x, y, idx, params=None, record=False):
        logits = model(x) if params is None else torch.func.functional_call(model, params, (x,), strict=False)
        return F.cross_entropy(logits, y), logits

    return objective


@pytest.mark.parametrize(
    "momentum, weight_decay, nesterov, warm",
    [(0.0, 0.0, False, True), (0.9, 3e-4, False, True), (0.9, 5e-4, True, True), (0.9, 5e-4, True, False)],
)
def test_unrolled_gradient_matches_exact_hypergradient(momentum, weight_decay, nesterov, warm):
    torch.manual_seed(0)
    model = ToySupernet().double()
    x_tr, y_tr = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 3, (16,))
    x_va, y_va = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 3, (16,))
    idx = torch.arange(16)
    w_opt = torch.optim.SGD(model.weights(), lr=0.1, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if momentum and warm:
        # Fill the momentum buffers with one real step, as in the middle of a search.
        F.cross_entropy(model(x_tr), y_tr).backward()
        w_opt.step()
        w_opt.zero_grad()
    eta = 0.05
    architect = Architect(model, objective_for(model), arch_learning_rate=3e-4, arch_weight_decay=1e-3, unrolled=True)
    grads = architect._unrolled_gradients((x_tr, y_tr, idx), (x_va, y_va, idx), eta, w_opt)

    # Exact: differentiate L_val(w'(alpha), alpha) through the step SGD would take next
    # (PyTorch's formulas: buf = m*buf + d, or d before the first step; Nesterov: d + m*buf).
    names = [n for n, _ in model.named_weights()]
    weights = [p for _, p in model.named_weights()]
    loss_tr = F.cross_entropy(model(x_tr), y_tr)
    g = torch.autograd.grad(loss_tr, weights, create_graph=True)
    unrolled = {}
    for n, w, gi in zip(names, weights, g):
        buf = w_opt.state.get(w, {}).get("momentum_buffer")
        d = gi + weight_decay * w.detach()
        new_buf = d if buf is None else momentum * buf + d
        step = (d + momentum * new_buf if nesterov else new_buf) if momentum else d
        unrolled[n] = w.detach() - eta * step
    loss_va = F.cross_entropy(torch.func.functional_call(model, unrolled, (x_va,), strict=False), y_va)
    (exact,) = torch.autograd.grad(loss_va, [model.alpha])
    assert torch.allclose(grads[0], exact, rtol=1e-4, atol=1e-7), (grads[0], exact)


def test_first_order_step_moves_only_alphas():
    torch.manual_seed(1)
    model = ToySupernet()
    before = [p.detach().clone() for p in model.weights()]
    alpha_before = model.alpha.detach().clone()
    w_opt = torch.optim.SGD(model.weights(), lr=0.1)
    architect = Architect(model, objective_for(model), arch_learning_rate=0.1, arch_weight_decay=0.0)
    batch = (torch.randn(8, 5), torch.randint(0, 3, (8,)), torch.arange(8))
    architect.step(batch, batch, 0.1, w_opt)
    assert all(torch.equal(a, b) for a, b in zip(before, model.weights()))
    assert not torch.equal(alpha_before, model.alpha)
    assert all(p.grad is None for p in model.weights())


@pytest.mark.parametrize("nesterov", [False, True])
def test_unrolled_weights_are_the_step_sgd_takes_next(nesterov):
    """w' of the architect equals the weights after w_optimizer.step() on the same gradient."""
    torch.manual_seed(2)
    model = ToySupernet().double()
    x, y = torch.randn(8, 5, dtype=torch.float64), torch.randint(0, 3, (8,))
    batch = (x, y, torch.arange(8))
    w_opt = torch.optim.SGD(model.weights(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=nesterov)
    for _ in range(2):  # the second round has momentum buffers
        architect = Architect(
            model, objective_for(model), arch_learning_rate=3e-4, arch_weight_decay=0.0, unrolled=True
        )
        unrolled = architect._unrolled_weights(batch, 0.1, w_opt)
        w_opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        w_opt.step()
        for name, w in model.named_weights():
            assert torch.allclose(unrolled[name], w, atol=1e-12), name


def test_unrolled_step_records_the_teacher_from_the_real_weights():
    torch.manual_seed(3)
    model = ToySupernet()
    recorded = []

    def objective(x, y, idx, params=None, record=False):
        logits = model(x) if params is None else torch.func.functional_call(model, params, (x,), strict=False)
        if record:
            recorded.append((params is None, logits.detach().clone()))
        return F.cross_entropy(logits, y), logits

    w_opt = torch.optim.SGD(model.weights(), lr=0.1, momentum=0.9)
    architect = Architect(model, objective, arch_learning_rate=3e-4, arch_weight_decay=0.0, unrolled=True)
    batch = (torch.randn(8, 5), torch.randint(0, 3, (8,)), torch.arange(8))
    with torch.no_grad():
        expected = model(batch[0])
    architect.step(batch, batch, 0.1, w_opt)
    assert len(recorded) == 1 and recorded[0][0]  # one recording, from the supernet's own weights
    assert torch.allclose(recorded[0][1], expected)


@pytest.mark.parametrize("kind", ["reference", "fused"])
def test_unrolled_step_leaves_the_bn_statistics_as_darts_does(kind):
    """quark0/darts ``cnn/architect.py`` runs the supernet itself on the training half at w and
    w ± R·v, and the forward at w' on a separate copy (``_construct_model_from_theta``); the
    teacher's recording forward is not in DARTS.  So after the step the supernet's BN running
    statistics are those of the three training-half forwards only."""
    from sd_darts.search.config import SearchConfig
    from sd_darts.search.distill import SearchObjective, TeacherCache
    from sd_darts.spaces.darts.fused import FusedDartsSupernet
    from sd_darts.spaces.darts.supernet import DartsSupernet

    torch.manual_seed(4)
    model = DartsSupernet(4, 10, 3).double()
    if kind == "fused":
        model = FusedDartsSupernet.from_reference(model)
    replay, initial = copy.deepcopy(model), copy.deepcopy(model)
    cfg = SearchConfig(method="sd-darts", epochs=2, warmup_epochs=1, window=1, init_channels=4, layers=3)
    cfg.validate()
    real = SearchObjective(model, cfg, TeacherCache(16, 10, 1))
    real.set_epoch(1)  # KD and recording on
    weight_names = {n for n, _ in model.named_weights()}
    calls = []

    def objective(x, y, idx, params=None, record=False):
        weights = None if params is None else {n: v.detach().clone() for n, v in params.items() if n in weight_names}
        calls.append((x, weights, record))
        return real(x, y, idx, params=params, record=record)

    g = torch.Generator().manual_seed(5)
    train = (
        torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64),
        torch.randint(0, 10, (4,), generator=g),
        torch.arange(4),
    )
    valid = (
        torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64),
        torch.randint(0, 10, (4,), generator=g),
        torch.arange(4, 8),
    )
    w_opt = torch.optim.SGD(model.weights(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    architect = Architect(model, objective, arch_learning_rate=3e-4, arch_weight_decay=1e-3, unrolled=True)
    model.train()
    architect.step(train, valid, 0.1, w_opt)
    assert [(x is train[0], w is None, r) for x, w, r in calls] == [
        (True, True, False),  # w: the gradient of the unrolled step
        (False, False, False),  # w' (DARTS: the unrolled copy)
        (True, False, False),  # w + R·v
        (True, False, False),  # w − R·v
        (False, True, True),  # w: the teacher's recording forward
    ]
    assert bool((real.cache.epochs[0, 4:8] == 1).all())  # the recording forward did record
    replay.train()
    with torch.no_grad():  # DARTS's forwards of the supernet itself, with the same weights
        for x, weights, _ in calls:
            if x is train[0]:
                replay(x) if weights is None else torch.func.functional_call(replay, weights, (x,), strict=False)
    for (name, got), want in zip(model.named_buffers(), replay.buffers()):
        assert torch.equal(got, want), name
    assert any(not torch.equal(a, b) for a, b in zip(model.buffers(), initial.buffers()))  # they did move
