"""The fused NAS-Bench-201 supernet computes the reference supernet's function:
logits, gradients, BatchNorm statistics (train and eval) and the first-order search trajectory,
in float64 on CPU."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from sd_darts.search.distill import TeacherCache
from sd_darts.search.fast import FirstOrderStep
from sd_darts.search.step import StepSettings
from sd_darts.spaces import get_space
from sd_darts.spaces.nb201.fused import FusedNB201Supernet
from sd_darts.spaces.nb201.supernet import NB201Supernet

C, N_CELLS, CLASSES = 4, 2, 10


@pytest.fixture()
def pair():
    torch.manual_seed(0)
    ref = NB201Supernet(C, N_CELLS, CLASSES).double()
    return ref, FusedNB201Supernet.from_reference(copy.deepcopy(ref))


def _batch(seed=1, n=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g, dtype=torch.float64), torch.randint(0, CLASSES, (n,), generator=g)


def test_logits_gradients_and_statistics_equal_the_reference(pair):
    ref, fused = pair
    x, y = _batch()
    lr, lf = ref(x), fused(x)
    torch.testing.assert_close(lf, lr, rtol=0, atol=1e-12)
    F.cross_entropy(lr, y).backward()
    F.cross_entropy(lf, y).backward()
    torch.testing.assert_close(fused.alphas.grad, ref.alphas.grad, rtol=0, atol=1e-12)
    holder = copy.deepcopy(fused)
    with torch.no_grad():
        for p, q in zip(holder.parameters(), fused.parameters()):
            p.copy_(q.grad)
    grads = holder.reference_state_dict()
    for name, p in ref.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=0, atol=1e-12, msg=name)
    state = fused.reference_state_dict()
    NB201Supernet(C, N_CELLS, CLASSES).double().load_state_dict(state)  # strict
    for name, t in ref.state_dict().items():
        torch.testing.assert_close(state[name], t, rtol=0, atol=1e-13, msg=name)
    ref.eval(), fused.eval()
    torch.testing.assert_close(fused(x), ref(x), rtol=0, atol=1e-12)


def test_build_impl_fused_keeps_the_seed_semantics():
    torch.manual_seed(4)
    ref = get_space("nb201").build(C, N_CELLS, CLASSES)
    torch.manual_seed(4)
    fused = get_space("nb201").build(C, N_CELLS, CLASSES, impl="fused")
    state = fused.reference_state_dict()
    for name, t in ref.state_dict().items():
        assert torch.equal(state[name], t), name
    assert fused.genotype() == ref.genotype()


def test_first_order_steps_follow_the_reference_supernet(pair):
    ref, fused = pair
    s = StepSettings(warmup_epochs=1, window=2, grad_clip=0.5, arch_learning_rate=3e-3)
    steps = [FirstOrderStep(m, s, TeacherCache(24, CLASSES, 2)) for m in (ref, fused)]
    for k in range(4):
        g = torch.Generator().manual_seed(k)
        perm = torch.randperm(24, generator=g)
        batch = (*_batch(10 + k, 4), perm[:4], *_batch(20 + k, 4), perm[4:8])
        for step in steps:
            step.set_epoch(k // 2, 0.1)
            step(*batch)
    state = fused.reference_state_dict()
    for name, t in ref.state_dict().items():
        torch.testing.assert_close(state[name].double(), t.double(), rtol=0, atol=1e-11, msg=name)
