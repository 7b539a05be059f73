"""Several seeds trained as one stacked model: every seed's trajectory is its
single-seed trajectory, and a seed's state converts to and from a single-seed checkpoint."""

from __future__ import annotations

import copy

import pytest
import torch

from sd_darts.search.architect import Architect
from sd_darts.search.config import SearchConfig
from sd_darts.search.distill import SearchObjective, TeacherCache
from sd_darts.search.fast import FirstOrderStep
from sd_darts.search.stacked import build_stacked, load_seed_checkpoint, seed_checkpoint, stack_batches
from sd_darts.search.step import StepSettings, reference_step
from sd_darts.spaces import get_space
from sd_darts.spaces.darts.supernet import DartsSupernet
from sd_darts.utils.runtime import seed_everything

C, LAYERS, CLASSES, B, N_SAMPLES = 4, 5, 10, 4, 24
SEEDS = (0, 5, 9)
SETTINGS = StepSettings(warmup_epochs=1, window=2, grad_clip=0.5, arch_learning_rate=3e-3)


def _batch(seed, epoch, b, dtype=torch.float64):
    """Each seed has its own data order: the batch depends on the seed."""
    g = torch.Generator().manual_seed(1000 * seed + 100 * epoch + b)
    perm = torch.randperm(N_SAMPLES, generator=g)
    return (
        torch.randn(B, 3, 16, 16, generator=g, dtype=dtype),
        torch.randint(0, CLASSES, (B,), generator=g),
        perm[:B],
        torch.randn(B, 3, 16, 16, generator=g, dtype=dtype),
        torch.randint(0, CLASSES, (B,), generator=g),
        perm[B : 2 * B],
    )


def _schedule():
    return [(epoch, b) for epoch in range(2) for b in range(2)]  # warm-up epoch, then KD


def _lr(epoch):
    return 0.1 * 0.5**epoch


def test_build_stacked_initialises_every_seed_as_a_single_seed_run():
    stacked = build_stacked(SEEDS, C, LAYERS, CLASSES)
    for s, seed in enumerate(SEEDS):
        seed_everything(seed)
        ref = get_space("darts").build(C, LAYERS, CLASSES)
        mine = stacked.reference_state_dict(s)
        for name, t in ref.state_dict().items():
            assert torch.equal(mine[name], t), (seed, name)


def test_each_seed_follows_its_single_seed_trajectory():
    singles = []
    for seed in SEEDS:
        seed_everything(seed)
        model = get_space("darts").build(C, LAYERS, CLASSES, impl="fused").double()
        step = FirstOrderStep(model, SETTINGS, TeacherCache(N_SAMPLES, CLASSES, 2))
        for epoch, b in _schedule():
            step.set_epoch(epoch, _lr(epoch))
            step(*_batch(seed, epoch, b))
        singles.append((model, step))
    stacked = build_stacked(SEEDS, C, LAYERS, CLASSES).double()
    step = FirstOrderStep(stacked, SETTINGS, TeacherCache(N_SAMPLES, CLASSES, 2, num_seeds=len(SEEDS)))
    for epoch, b in _schedule():
        step.set_epoch(epoch, _lr(epoch))
        step(*stack_batches([_batch(seed, epoch, b) for seed in SEEDS]))
    for s, (model, single) in enumerate(singles):
        mine = stacked.reference_state_dict(s)
        for name, t in model.reference_state_dict().items():
            torch.testing.assert_close(mine[name], t, rtol=0, atol=1e-12, msg=f"seed {SEEDS[s]}: {name}")
        assert torch.equal(step.cache.epochs[s], single.cache.epochs[0])
        torch.testing.assert_close(step.cache.probs[s], single.cache.probs[0], rtol=0, atol=1e-6)
    genotypes = stacked.genotype()
    assert genotypes == [m.genotype() for m, _ in singles]
    per_seed = step.read_metrics()  # one dict per seed, as each single-seed run reports it
    for s, (_, single) in enumerate(singles):
        for key, value in single.read_metrics()[0].items():
            assert per_seed[s][key] == pytest.approx(value, rel=1e-5), (s, key)


def test_gradient_clipping_is_per_seed():
    """A seed whose gradient is huge is clipped; the others are not scaled with it."""
    stacked = build_stacked(SEEDS[:2], C, LAYERS, CLASSES).double()
    step = FirstOrderStep(stacked, SETTINGS, TeacherCache(N_SAMPLES, CLASSES, 2, num_seeds=2))
    grads = [torch.ones_like(w) for w in step.weights]
    views = [g.view(step._seed_views[k]) for k, g in enumerate(grads)]
    for v in views:
        v[:, 0] *= 1e3  # seed 0: norm far above the clip, seed 1: norm sqrt(P) ~ above too
    norms_before = torch.stack([v.pow(2).sum((0, 2)) for v in views]).sum(0).sqrt()
    step._clip(grads)
    norms_after = torch.stack([g.view(shape).pow(2).sum((0, 2)) for g, shape in zip(grads, step._seed_views)])
    norms_after = norms_after.sum(0).sqrt()
    torch.testing.assert_close(
        norms_after, torch.full((2,), SETTINGS.grad_clip, dtype=torch.float64), rtol=1e-5, atol=0
    )
    assert norms_before[0] > 100 * norms_before[1]


def test_a_seed_resumes_in_the_reference_loop_from_its_single_seed_checkpoint():
    """seed_checkpoint writes what a single-seed reference run would; the reference loop resumed
    from it continues as the stacked run does; load_seed_checkpoint restores it exactly."""
    stacked = build_stacked(SEEDS[:2], C, LAYERS, CLASSES).double()
    step = FirstOrderStep(stacked, SETTINGS, TeacherCache(N_SAMPLES, CLASSES, 2, num_seeds=2))
    schedule = _schedule()
    for epoch, b in schedule[:3]:
        step.set_epoch(epoch, _lr(epoch))
        step(*stack_batches([_batch(seed, epoch, b) for seed in SEEDS[:2]]))
    state = seed_checkpoint(step, 1, _lr(1))
    saved = copy.deepcopy(state)  # torch optimisers adopt the loaded tensors and update them in place
    # the reference loop, resumed from seed 1's checkpoint
    ref = DartsSupernet(C, CLASSES, LAYERS).double()
    ref.load_state_dict(state["model"])
    cfg = SearchConfig(method="sd-darts", epochs=3, warmup_epochs=1, window=2, init_channels=C, layers=LAYERS)
    cfg.validate()
    cache = TeacherCache(N_SAMPLES, CLASSES, 2)
    cache.load_state_dict(state["teacher_cache"])
    objective = SearchObjective(ref, cfg, cache)
    w_opt = torch.optim.SGD(ref.weights(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    w_opt.load_state_dict(state["w_optimizer"])
    architect = Architect(ref, objective, arch_learning_rate=3e-3, arch_weight_decay=1e-3)
    architect.load_state_dict(state["a_optimizer"])
    for epoch, b in schedule[3:]:
        objective.set_epoch(epoch)
        for group in w_opt.param_groups:
            group["lr"] = _lr(epoch)
        x, y, i, xv, yv, iv = _batch(SEEDS[1], epoch, b)
        reference_step(architect, objective, w_opt, (x, y, i), (xv, yv, iv), _lr(epoch), SETTINGS.grad_clip)
    # ... and the stacked run, after a round trip of seed 1 through its checkpoint
    load_seed_checkpoint(step, 1, saved)
    for epoch, b in schedule[3:]:
        step.set_epoch(epoch, _lr(epoch))
        step(*stack_batches([_batch(seed, epoch, b) for seed in SEEDS[:2]]))
    mine = stacked.reference_state_dict(1)
    for name, t in ref.state_dict().items():
        torch.testing.assert_close(mine[name], t, rtol=0, atol=1e-11, msg=name)
