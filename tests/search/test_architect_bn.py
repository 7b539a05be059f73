"""One architect step against quark0/darts ``cnn/architect.py`` written out by hand (float64):
the same alpha gradient and the same BatchNorm running statistics left in the supernet.

quark0 runs the real model on the training half at ``w`` (``_compute_unrolled_model``) and at
``w ± R·v`` (``_hessian_vector_product``): those forwards update its statistics.  The forward
at ``w'`` runs on a separate copy (``_construct_model_from_theta``), whose statistics are then
dropped.  First order (``_backward_step``) is one forward of the real model on the validation
half.  The teacher's recording forward of SD-DARTS is not in quark0: it must leave them alone.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from sd_darts.search.architect import Architect
from sd_darts.search.config import SearchConfig
from sd_darts.search.distill import SearchObjective, TeacherCache, distillation_loss
from sd_darts.spaces.darts.fused import FusedDartsSupernet
from sd_darts.spaces.darts.supernet import DartsSupernet

CLASSES, N = 10, 4
MOMENTUM, WEIGHT_DECAY, ETA = 0.9, 3e-4, 0.1


def build(kind):
    net = DartsSupernet(4, CLASSES, 3).double()
    return FusedDartsSupernet.from_reference(net) if kind == "fused" else net


def new_from(net, kind):
    """quark0's ``model.new()`` + ``load_state_dict(model.state_dict())``: a separate network (a
    deepcopy would not do: it drops the gradient hooks that mask the fused supernet's kernels)."""
    new = build(kind).train()
    new.load_state_dict(net.state_dict())
    return new


def setup(kind):
    torch.manual_seed(0)
    model = build(kind).train()
    cfg = SearchConfig(method="sd-darts", epochs=2, warmup_epochs=1, window=1, init_channels=4, layers=3)
    cfg.validate()
    cache = TeacherCache(2 * N, CLASSES, 1, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    cache.record(torch.arange(2 * N), F.softmax(torch.randn(2 * N, CLASSES, generator=g, dtype=torch.float64), -1), 0)
    objective = SearchObjective(model, cfg, cache)
    objective.set_epoch(1)  # KD on (teacher: epoch 0) and the alpha half recorded
    assert objective.kd_on and objective.recording

    def batch(start):
        x = torch.randn(N, 3, 8, 8, generator=g, dtype=torch.float64)
        return x, torch.randint(0, CLASSES, (N,), generator=g), torch.arange(start, start + N)

    train, valid = batch(0), batch(N)
    w_opt = torch.optim.SGD(model.weights(), lr=ETA, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    # the middle of a search: one weight step has filled the momentum buffers (a real step, so
    # that they respect the fused supernet's masked kernels)
    x, y, _ = batch(2 * N)
    F.cross_entropy(model(x), y).backward()
    w_opt.step()
    w_opt.zero_grad(set_to_none=True)
    # quark0's objects: the real model as it is before the step, and the teacher as it is now
    quark = new_from(model, kind)
    teacher_cache = copy.deepcopy(cache)

    def quark_loss(net, x, y, idx):  # model._loss, with SD-DARTS's KD term (paper Eq. 2)
        logits = net(x)
        teacher, mask = teacher_cache.teacher(idx, 1)
        kd = distillation_loss(logits, teacher, mask, temperature=cfg.temperature, direction=cfg.kd_direction)
        return F.cross_entropy(logits, y) + cfg.sd_lambda * kd

    buffers = [w_opt.state[w]["momentum_buffer"] for w in model.weights()]
    return model, objective, cache, train, valid, w_opt, quark, quark_loss, buffers


def quark0_unrolled(kind, quark, loss_fn, train, valid, buffers):
    """quark0's ``_backward_step_unrolled``; returns dalpha."""
    # _compute_unrolled_model: a forward of the real model on the training half
    weights = quark.weights()
    loss = loss_fn(quark, *train)
    theta = [w.detach() for w in weights]
    dtheta = [g + WEIGHT_DECAY * t for g, t in zip(torch.autograd.grad(loss, weights), theta)]
    moment = [MOMENTUM * b for b in buffers]
    # _construct_model_from_theta: a new network holding w' (and the real model's buffers)
    unrolled = new_from(quark, kind)
    with torch.no_grad():
        for p, t, m, d in zip(unrolled.weights(), theta, moment, dtheta):
            p.copy_(t - ETA * (m + d))
    unrolled_loss = loss_fn(unrolled, *valid)
    unrolled_loss.backward()
    dalpha = [a.grad.detach().clone() for a in unrolled.arch_parameters()]
    vector = [p.grad.detach().clone() for p in unrolled.weights()]
    # _hessian_vector_product: the real model at w + R·v and w − R·v, in place
    r = 1e-2 / torch.cat([v.reshape(-1) for v in vector]).norm()
    with torch.no_grad():
        for p, v in zip(quark.weights(), vector):
            p.add_(r * v)
    grads_p = torch.autograd.grad(loss_fn(quark, *train), quark.arch_parameters())
    with torch.no_grad():
        for p, v in zip(quark.weights(), vector):
            p.sub_(2 * r * v)
    grads_n = torch.autograd.grad(loss_fn(quark, *train), quark.arch_parameters())
    with torch.no_grad():
        for p, v in zip(quark.weights(), vector):
            p.add_(r * v)
    return [g - ETA * (x - y) / (2 * r) for g, x, y in zip(dalpha, grads_p, grads_n)]


def architect_step(model, objective, train, valid, w_opt, unrolled):
    architect = Architect(model, objective, arch_learning_rate=3e-4, arch_weight_decay=1e-3, unrolled=unrolled)
    seen = []
    step = architect.optimizer.step

    def capture(*args, **kwargs):  # the alpha gradient the architect hands to Adam
        seen.append([a.grad.detach().clone() for a in architect.alphas])
        return step(*args, **kwargs)

    architect.optimizer.step = capture
    before = [b.clone() for b in model.buffers()]
    architect.step(train, valid, ETA, w_opt)
    assert len(seen) == 1
    return seen[0], before


def assert_same_statistics(model, quark, before):
    names = [n for n, _ in model.named_buffers()]
    assert any(b.is_floating_point() for b in model.buffers())
    for name, got, want in zip(names, model.buffers(), quark.buffers()):
        if got.is_floating_point():
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14, msg=name)
        else:  # num_batches_tracked (the forwards quark0 runs on the supernet) and index tables
            assert torch.equal(got, want), (name, got, want)
    assert any(not torch.equal(a, b) for a, b in zip(model.buffers(), before))  # they did move


def forwards_counted(model, before):
    """How many train-mode forwards of the supernet each ``num_batches_tracked`` counted."""
    return {int(b - a) for (n, b), a in zip(model.named_buffers(), before) if n.endswith("num_batches_tracked")}


@pytest.mark.parametrize("kind", ["reference", "fused"])
def test_second_order_step_matches_quark0_statistics_and_gradient(kind):
    model, objective, cache, train, valid, w_opt, quark, quark_loss, buffers = setup(kind)
    want = quark0_unrolled(kind, quark, quark_loss, train, valid, buffers)
    got, before = architect_step(model, objective, train, valid, w_opt, unrolled=True)
    assert_same_statistics(model, quark, before)
    assert forwards_counted(model, before) == {3}  # w, w + R·v, w − R·v; not w', not the recording
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-8, atol=1e-12)
    assert bool((cache.epochs[0, 0, N:] == 1).all()) and bool(
        (cache.epochs[0, 0, :N] == 0).all()
    )  # recorded: alpha half


@pytest.mark.parametrize("kind", ["reference", "fused"])
def test_first_order_step_matches_quark0_statistics_and_gradient(kind):
    model, objective, cache, train, valid, w_opt, quark, quark_loss, _ = setup(kind)
    want = torch.autograd.grad(quark_loss(quark, *valid), quark.arch_parameters())  # _backward_step
    got, before = architect_step(model, objective, train, valid, w_opt, unrolled=False)
    assert_same_statistics(model, quark, before)
    assert forwards_counted(model, before) == {1}  # the one forward, which also records
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-15)
    assert bool((cache.epochs[0, 0, N:] == 1).all())
