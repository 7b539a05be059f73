"""The fused DARTS supernet computes the reference supernet's function: logits, loss,
weight and alpha gradients, BatchNorm statistics and optimiser trajectories, in float64 on CPU."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from sd_darts.genotypes import PRIMITIVES
from sd_darts.search.architect import Architect
from sd_darts.search.config import SearchConfig
from sd_darts.search.distill import SearchObjective, TeacherCache
from sd_darts.search.step import reference_step
from sd_darts.spaces import get_space
from sd_darts.spaces.darts.fused import FusedDartsSupernet
from sd_darts.spaces.darts.fused_cell import TAP_MASKS
from sd_darts.spaces.darts.supernet import DartsSupernet

C, LAYERS, CLASSES = 4, 5, 10
SUBSETS = [
    PRIMITIVES,
    ("none", "skip_connect", "sep_conv_3x3"),
    ("max_pool_3x3", "dil_conv_5x5"),
    ("none", "skip_connect"),
    ("avg_pool_3x3", "sep_conv_5x5", "dil_conv_3x3"),
]


def _pair(primitives=PRIMITIVES, seed=0):
    torch.manual_seed(seed)
    ref = DartsSupernet(C, CLASSES, LAYERS, primitives=primitives).double()
    return ref, FusedDartsSupernet.from_reference(copy.deepcopy(ref))


def _batch(size=16, n=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g, dtype=torch.float64), torch.randint(0, CLASSES, (n,), generator=g)


def _fused_grads_as_reference(fused: FusedDartsSupernet) -> dict[str, torch.Tensor]:
    """The fused model's gradients, mapped to the reference's parameter names."""
    holder = copy.deepcopy(fused)
    with torch.no_grad():
        for p, q in zip(holder.parameters(), fused.parameters()):
            p.copy_(q.grad)
    return holder.reference_state_dict()


@pytest.mark.parametrize(
    "primitives,size",
    [(p, 16) for p in SUBSETS] + [(PRIMITIVES, 15)],
    ids=lambda p: "+".join(p)[:40] if isinstance(p, tuple) else str(p),
)
def test_logits_loss_and_all_gradients_equal_the_reference(primitives, size):
    ref, fused = _pair(primitives)
    x, y = _batch(size)
    lr, lf = ref(x), fused(x)
    torch.testing.assert_close(lf, lr, rtol=0, atol=1e-12)
    F.cross_entropy(lr, y).backward()
    F.cross_entropy(lf, y).backward()
    grads = _fused_grads_as_reference(fused)
    for name, p in ref.named_parameters():
        expected = p.grad if p.grad is not None else torch.zeros_like(p)
        torch.testing.assert_close(grads[name], expected, rtol=0, atol=1e-12, msg=name)
    # BatchNorm running statistics moved identically (one training forward each)
    state = fused.reference_state_dict()
    for name, t in ref.state_dict().items():
        if "running" in name:
            torch.testing.assert_close(state[name], t, rtol=0, atol=1e-13, msg=name)


def test_eval_mode_uses_the_running_statistics_like_the_reference():
    ref, fused = _pair()
    x, _ = _batch()
    ref(x), fused(x)  # move the running statistics away from their initial values
    ref.eval(), fused.eval()
    torch.testing.assert_close(fused(x), ref(x), rtol=0, atol=1e-12)


def test_conversion_round_trips_exactly_and_keeps_the_seed_semantics():
    torch.manual_seed(3)
    ref = get_space("darts").build(C, LAYERS, CLASSES)
    torch.manual_seed(3)
    fused = get_space("darts").build(C, LAYERS, CLASSES, impl="fused")
    state = fused.reference_state_dict()
    assert state.keys() == ref.state_dict().keys()
    for name, t in ref.state_dict().items():
        assert torch.equal(state[name], t), name
    DartsSupernet(C, CLASSES, LAYERS).load_state_dict(state)  # strict
    assert fused.genotype() == ref.genotype()
    with pytest.raises(ValueError, match="impl"):
        get_space("darts").build(C, LAYERS, CLASSES, impl="cuda")


def _search_trajectory(model, sd_lambda, steps=4, unrolled=False):
    """Losses of the reference loop (Architect + SearchObjective + SGD + clipping) on ``model``."""
    cfg = SearchConfig(
        method="sd-darts", epochs=3, warmup_epochs=1, window=2, sd_lambda=sd_lambda, init_channels=C, layers=LAYERS
    )
    cfg.validate()
    cache = TeacherCache(24, CLASSES, 2)
    objective = SearchObjective(model, cfg, cache)
    w_opt = torch.optim.SGD(model.weights(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    architect = Architect(model, objective, arch_learning_rate=3e-3, arch_weight_decay=1e-3, unrolled=unrolled)
    losses = []
    for step in range(steps):
        objective.set_epoch(step // 2)
        g = torch.Generator().manual_seed(10 + step)
        perm = torch.randperm(24, generator=g)
        x = torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64)
        xv = torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64)
        y, yv = torch.randint(0, CLASSES, (4,), generator=g), torch.randint(0, CLASSES, (4,), generator=g)
        loss, _, v_loss, _ = reference_step(
            architect, objective, w_opt, (x, y, perm[:4]), (xv, yv, perm[4:8]), 0.05, 1.0
        )
        losses.append((v_loss.item(), loss.item()))
    return losses


@pytest.mark.parametrize("sd_lambda", [1.0, 0.0])
def test_reference_search_loop_gives_the_same_trajectory_on_both_supernets(sd_lambda):
    ref, fused = _pair()
    lr = _search_trajectory(ref, sd_lambda)
    lf = _search_trajectory(fused, sd_lambda)
    torch.testing.assert_close(torch.tensor(lf), torch.tensor(lr), rtol=0, atol=1e-11)
    state = fused.reference_state_dict()
    for name, t in ref.state_dict().items():
        torch.testing.assert_close(state[name].double(), t.double(), rtol=0, atol=1e-11, msg=name)


def test_second_order_architect_masks_replaced_union_kernels():
    """The unrolled architect swaps in weights through functional_call; the fused model must
    not see the masked taps of those (non-parameter) kernels."""
    ref, fused = _pair()
    lr = _search_trajectory(ref, 1.0, steps=2, unrolled=True)
    lf = _search_trajectory(fused, 1.0, steps=2, unrolled=True)
    torch.testing.assert_close(torch.tensor(lf), torch.tensor(lr), rtol=0, atol=1e-10)
    # directly: garbage on the masked taps of a replaced kernel changes nothing
    x, _ = _batch()
    params = dict(fused.named_parameters())
    name = next(n for n in params if n.endswith("dw_sep"))
    noisy = dict(params)
    noisy[name] = params[name] + 100.0
    clean = dict(params)
    mask = fused.get_buffer(name + "_mask")
    clean[name] = (params[name] + 100.0) * mask
    torch.testing.assert_close(functional_call(fused, noisy, (x,)), functional_call(fused, clean, (x,)))


def test_masked_taps_get_no_gradient_and_stay_zero():
    ref, fused = _pair()
    x, y = _batch()
    opt = torch.optim.SGD(fused.weights(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(fused(x), y).backward()
        opt.step()
    for name, p in fused.named_parameters():
        if name.rsplit(".", 1)[-1] in ("dw_sep", "dw_dil", "dw2"):
            mask = fused.get_buffer(name + "_mask")
            assert torch.all(p[mask == 0] == 0), name
            assert torch.any(p[mask == 1] != 0), name
    assert TAP_MASKS["sep_conv_3x3"].sum() == 9 and TAP_MASKS["dil_conv_5x5"].sum() == 25


def test_fused_supernet_follows_the_supernet_contract():
    _, fused = _pair()
    alphas = fused.arch_parameters()
    assert [a.shape for a in alphas] == [torch.Size([14, 8])] * 2
    names = dict(fused.named_weights())
    assert all(all(p is not a for a in alphas) for p in fused.weights())
    assert len(names) == len(fused.weights()) == sum(1 for _ in fused.parameters()) - 2
    with pytest.raises(ValueError, match="primitives"):
        FusedDartsSupernet(C, CLASSES, LAYERS, primitives=("none",))


def test_alpha_hessian_equals_the_reference():
    """The sharpness tracking (sd_darts.search.hessian, double backward) sees the same Hessian."""
    from sd_darts.search.hessian import full_hessian

    torch.manual_seed(0)
    ref = DartsSupernet(2, CLASSES, 3, primitives=("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3")).double()
    fused = FusedDartsSupernet.from_reference(copy.deepcopy(ref))
    x, y = _batch(8, 2)
    torch.testing.assert_close(full_hessian(fused, x, y), full_hessian(ref, x, y), rtol=1e-10, atol=1e-10)
