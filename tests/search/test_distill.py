"""Self-distillation (paper §3.3 KL term, §3.4 voting teachers): property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sd_darts.errors import UserError
from sd_darts.search.distill import (
    TeacherCache,
    distillation_loss,
    kd_active,
    kl_divergence,
    recording_active,
    recording_start_epoch,
)
from sd_darts.utils.files import torch_load, torch_save

SETTINGS = settings(max_examples=60, deadline=None)

# Float32 KL against a float64 reference computed from the same float32 inputs: the float32
# logs carry a relative error of ~1e-7 on values up to |log q| ~ 30, summed over <= 12 terms.
KL_ATOL = 2e-5
KL_RTOL = 1e-5


@st.composite
def prob_batch(draw, zeros=True, rows=None, classes=None):
    """A (B, C) float32 batch of probability vectors, optionally with exact zeros."""
    b = rows if rows is not None else draw(st.integers(1, 5))
    c = classes if classes is not None else draw(st.integers(2, 12))
    atom = st.floats(1e-6, 1.0, allow_nan=False)
    if zeros:
        atom = st.one_of(st.just(0.0), atom)
    rows_ = []
    for _ in range(b):
        row = np.array(draw(st.lists(atom, min_size=c, max_size=c)), dtype=np.float64)
        if row.sum() == 0:
            row[draw(st.integers(0, c - 1))] = 1.0
        rows_.append(row / row.sum())
    return torch.tensor(np.stack(rows_), dtype=torch.float32)


@st.composite
def prob_pair(draw, zeros_p=True, zeros_q=True):
    p = draw(prob_batch(zeros=zeros_p))
    q = draw(prob_batch(zeros=zeros_q, rows=p.shape[0], classes=p.shape[1]))
    return p, q


def kl_reference(p: torch.Tensor, q: torch.Tensor) -> np.ndarray:
    """KL(p || q) in float64: sum over p > 0 of p (log p - log q)."""
    p64, q64 = p.double().numpy(), q.double().numpy()
    out = np.zeros(p64.shape[0])
    for i in range(p64.shape[0]):
        m = p64[i] > 0
        out[i] = np.sum(p64[i, m] * (np.log(p64[i, m]) - np.log(q64[i, m])))
    return out


logits_st = st.integers(0, 2**31 - 1).map(
    lambda seed: torch.randn(4, 7, generator=torch.Generator().manual_seed(seed)) * 5
)


# ---------------------------------------------------------------------------- KL
@SETTINGS
@given(prob_pair())
def test_kl_nonnegative_and_finite_with_zeros_in_p_and_q(pq):
    p, q = pq
    kl = kl_divergence(p, q)
    assert kl.shape == (p.shape[0],)
    assert torch.isfinite(kl).all()
    assert (kl >= 0).all()


@SETTINGS
@given(prob_batch())
def test_kl_of_a_distribution_with_itself_is_exactly_zero(p):
    assert torch.equal(kl_divergence(p, p), torch.zeros(p.shape[0]))


@SETTINGS
@given(prob_pair(zeros_p=True, zeros_q=False))
def test_kl_matches_float64_reference(pq):
    p, q = pq
    ref = np.maximum(kl_reference(p, q), 0.0)
    got = kl_divergence(p, q).double().numpy()
    np.testing.assert_allclose(got, ref, rtol=KL_RTOL, atol=KL_ATOL)


@SETTINGS
@given(logits_st, logits_st)
def test_kl_with_precomputed_logs_matches_float64_reference(a, b):
    log_p, log_q = F.log_softmax(a, -1), F.log_softmax(b, -1)
    got = kl_divergence(None, None, log_p=log_p, log_q=log_q).double()
    p64, lp64, lq64 = F.softmax(a.double(), -1), F.log_softmax(a.double(), -1), F.log_softmax(b.double(), -1)
    ref = (p64 * (lp64 - lq64)).sum(-1)
    torch.testing.assert_close(got, ref, rtol=KL_RTOL, atol=KL_ATOL)


def test_kl_zero_in_q_where_p_positive_is_large_but_finite():
    p = torch.tensor([[0.5, 0.5]])
    q = torch.tensor([[1.0, 0.0]])
    kl = kl_divergence(p, q)
    assert torch.isfinite(kl).all() and kl.item() > 40  # 0.5 * (log 0.5 - log(tiny)) ~ 43


def test_kl_of_half_precision_inputs_is_computed_in_float32():
    p = torch.tensor([[0.25, 0.75]], dtype=torch.float16)
    q = torch.tensor([[0.5, 0.5]], dtype=torch.float16)
    kl = kl_divergence(p, q)
    assert kl.dtype == torch.float32
    assert abs(kl.item() - (0.25 * math.log(0.5) + 0.75 * math.log(1.5))) < 1e-6


# ---------------------------------------------------------------------------- distillation loss
@st.composite
def student_teacher_mask(draw):
    t = draw(prob_batch(zeros=True))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0, 60.0]))
    s = torch.randn(t.shape, generator=torch.Generator().manual_seed(seed)) * scale
    mask = torch.tensor(draw(st.lists(st.booleans(), min_size=t.shape[0], max_size=t.shape[0])))
    return s, t, mask


@SETTINGS
@given(student_teacher_mask())
def test_default_direction_is_kl_student_teacher_as_the_paper_writes_it(stm):
    s, t, mask = stm
    loss = distillation_loss(s, t, mask)
    per_sample = kl_divergence(F.softmax(s, -1), t)
    expected = (per_sample * mask.float()).sum() / s.shape[0]
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(student_teacher_mask())
def test_teacher_student_direction_swaps_the_arguments_and_matches_f_kl_div(stm):
    s, t, mask = stm
    loss = distillation_loss(s, t, mask, direction="teacher_student")
    # (q given as log_softmax: softmax itself underflows for the large logits drawn here)
    swapped = (kl_divergence(t, None, log_q=F.log_softmax(s, -1)) * mask.float()).sum() / s.shape[0]
    torch.testing.assert_close(loss, swapped, rtol=1e-5, atol=1e-5)
    # the usual PyTorch idiom computes this direction (xlogy makes 0 * log 0 = 0 there too)
    idiom = F.kl_div(F.log_softmax(s, -1), t, reduction="none").sum(-1)
    torch.testing.assert_close(loss, (idiom * mask.float()).sum() / s.shape[0], rtol=1e-5, atol=1e-5)


def test_the_two_directions_differ():
    s = torch.tensor([[3.0, 0.0, -2.0]])
    t = torch.tensor([[0.2, 0.3, 0.5]])
    m = torch.ones(1, dtype=torch.bool)
    a = distillation_loss(s, t, m)
    b = distillation_loss(s, t, m, direction="teacher_student")
    assert abs(a.item() - b.item()) > 0.1


@SETTINGS
@given(student_teacher_mask())
def test_mask_all_false_gives_exactly_zero_and_zero_gradient(stm):
    s, t, _ = stm
    s = s.clone().requires_grad_(True)
    loss = distillation_loss(s, t, torch.zeros(s.shape[0], dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(s.grad, torch.zeros_like(s))


@SETTINGS
@given(
    student_teacher_mask(), st.sampled_from(["student_teacher", "teacher_student"]), st.sampled_from([0.5, 1.0, 4.0])
)
def test_gradient_is_finite_even_with_zero_teacher_probabilities(stm, direction, temperature):
    s, t, mask = stm
    s = s.clone().requires_grad_(True)
    loss = distillation_loss(s, t, mask, temperature=temperature, direction=direction)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(s.grad).all()


@SETTINGS
@given(student_teacher_mask())
def test_lambda_zero_leaves_the_loss_bit_identical(stm):
    s, t, mask = stm
    labels = torch.zeros(s.shape[0], dtype=torch.long)
    ce = F.cross_entropy(s, labels)
    kd = distillation_loss(s, t, mask)
    total = ce + 0.0 * kd
    assert torch.equal(total, ce)


@SETTINGS
@given(logits_st, logits_st, st.sampled_from([0.5, 2.0, 4.0]))
def test_temperature_softens_the_student_and_scales_by_t_squared(a, b, temperature):
    """With the teacher recorded at temperature T as softmax(z/T), the loss is
    T^2 * KL(softmax(s/T) || softmax(z/T)) (Hinton), computed here in float64."""
    mask = torch.ones(a.shape[0], dtype=torch.bool)
    loss = distillation_loss(a, F.softmax(b / temperature, -1), mask, temperature=temperature)
    ls = F.log_softmax(a.double() / temperature, -1)
    lt = F.log_softmax(b.double() / temperature, -1)
    ref = (ls.exp() * (ls - lt)).sum(-1).mean() * temperature**2
    torch.testing.assert_close(loss.double(), ref, rtol=1e-4, atol=1e-5)


def test_gradient_matches_float64_autograd_of_the_paper_formula():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(6, 10, generator=gen) * 3
    t = F.softmax(torch.randn(6, 10, generator=gen) * 3, -1)
    mask = torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool)
    s32 = s.clone().requires_grad_(True)
    distillation_loss(s32, t, mask).backward()
    s64 = s.double().requires_grad_(True)
    ls = F.log_softmax(s64, -1)
    ref = ((ls.exp() * (ls - t.double().log())).sum(-1) * mask.double()).sum() / 6
    ref.backward()
    torch.testing.assert_close(s32.grad.double(), s64.grad, rtol=1e-4, atol=1e-6)


def test_bad_direction_or_temperature_is_a_user_error():
    s, t, m = torch.zeros(2, 3), torch.full((2, 3), 1 / 3), torch.ones(2, dtype=torch.bool)
    with pytest.raises(UserError, match="direction"):
        distillation_loss(s, t, m, direction="forward")
    with pytest.raises(UserError, match="temperature"):
        distillation_loss(s, t, m, temperature=0.0)


def test_distillation_loss_of_stacked_logits_is_the_loss_of_each_seed():
    """(S, N, C) logits give one value per seed, each exactly the (N, C) loss of that seed."""
    g = torch.Generator().manual_seed(0)
    teacher = torch.softmax(torch.randn(2, 6, 10, generator=g), -1)
    mask = torch.rand(2, 6, generator=g) > 0.3
    for dtype in (torch.float32, torch.float64):
        logits = torch.randn(2, 6, 10, generator=g, dtype=dtype)
        for direction in ("student_teacher", "teacher_student"):
            got = distillation_loss(logits, teacher, mask, 2.0, direction)
            assert got.shape == (2,) and got.dtype == dtype
            for s in range(2):
                want = distillation_loss(logits[s], teacher[s], mask[s], temperature=2.0, direction=direction)
                assert torch.equal(got[s], want), (dtype, direction, s)


@SETTINGS
@given(student_teacher_mask(), st.sampled_from(["student_teacher", "teacher_student"]), st.sampled_from([1.0, 2.0]))
def test_distillation_loss_follows_the_logits_dtype(stm, direction, temperature):
    """Float64 logits keep the KD term in float64 (a float32 teacher is widened exactly), so
    the reference loop and the fused step agree to float64 precision; half precision is upcast."""
    s, t, mask = stm
    s64 = s.double()
    loss = distillation_loss(s64, t, mask, temperature=temperature, direction=direction)
    assert loss.dtype == torch.float64
    log_s = F.log_softmax(s64 / temperature, -1)
    if direction == "student_teacher":
        kl = kl_divergence(None, t.double(), log_p=log_s)
    else:
        kl = kl_divergence(t.double(), None, log_q=log_s)
    want = torch.where(mask, kl, torch.zeros((), dtype=torch.float64)).sum() / s.shape[0] * temperature**2
    assert torch.equal(loss, want)
    assert distillation_loss(s.half(), t, mask, temperature, direction).dtype == torch.float32


# ---------------------------------------------------------------------------- teacher cache
@st.composite
def record_history(draw):
    """K, N, C and a call sequence of records with non-decreasing epochs, random subsets."""
    window = draw(st.integers(1, 4))
    n = draw(st.integers(1, 10))
    c = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    epoch = draw(st.integers(0, 3))
    calls = []
    for _ in range(draw(st.integers(0, 12))):
        epoch += draw(st.integers(0, 2))
        subset = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
        probs = F.softmax(torch.randn(len(subset), c, generator=gen) * 3, -1)
        calls.append((epoch, subset, probs))
    return window, n, c, calls


def build(window, n, c, calls):
    cache = TeacherCache(n, c, window, "cpu")
    for epoch, subset, probs in calls:
        cache.record(torch.tensor(subset), probs, epoch)
    return cache


def ring_reference(window, n, calls, epoch=None):
    """What a ring of K slots holds: per sample and residue e % K, the last record written;
    with ``epoch`` given, only the entries with epoch in [epoch-K, epoch-1]."""
    slots = [dict() for _ in range(n)]
    for e, subset, probs in calls:
        for row, i in enumerate(subset):
            slots[i][e % window] = (e, probs[row].double())
    out = []
    for i in range(n):
        votes = [p for (e, p) in slots[i].values() if epoch is None or epoch - window <= e <= epoch - 1]
        out.append(torch.stack(votes).mean(0) if votes else None)
    return out


def check_against(cache, ref, indices, epoch):
    probs, mask = cache.teacher(torch.tensor(indices), epoch=epoch)
    assert probs.dtype == torch.float32 and probs.shape == (len(indices), cache.num_classes)
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(indices)), rtol=0, atol=1e-5)
    assert (probs >= 0).all()
    for row, i in enumerate(indices):
        if ref[i] is None:
            assert not mask[row]
            torch.testing.assert_close(probs[row], torch.full((cache.num_classes,), 1 / cache.num_classes))
        else:
            assert mask[row]
            torch.testing.assert_close(probs[row].double(), ref[i], rtol=0, atol=1e-6)
    return mask


@SETTINGS
@given(record_history(), st.data())
def test_voting_teacher_is_the_mean_of_the_previous_k_epochs(hist, data):
    """Algorithm 2 semantics, independent of the slot layout: queried at any epoch t after
    the last record, each sample's teacher is the mean of its records at epochs t-K..t-1
    (the last write per epoch), samples without one are masked out (stale entries excluded)."""
    window, n, c, calls = hist
    cache = build(window, n, c, calls)
    last = max((e for e, _, _ in calls), default=0)
    t = data.draw(st.integers(last + 1, last + window + 2))
    per_epoch = [dict() for _ in range(n)]
    for e, subset, probs in calls:
        for row, i in enumerate(subset):
            per_epoch[i][e] = probs[row].double()
    ref = []
    for i in range(n):
        votes = [p for e, p in per_epoch[i].items() if t - window <= e <= t - 1]
        ref.append(torch.stack(votes).mean(0) if votes else None)
    indices = data.draw(st.permutations(range(n)))
    mask = check_against(cache, ref, list(indices), t)
    expected_cov = sum(r is not None for r in ref) / n
    assert abs(cache.coverage(t).item() - expected_cov) < 1e-6
    assert int(mask.sum()) == sum(r is not None for r in ref)


@SETTINGS
@given(record_history(), st.data())
def test_ring_buffer_contents_and_epoch_filter_at_any_query_epoch(hist, data):
    window, n, c, calls = hist
    cache = build(window, n, c, calls)
    ref_all = ring_reference(window, n, calls)
    indices = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=2 * n))
    check_against(cache, ref_all, indices, None)
    assert abs(cache.coverage().item() - sum(r is not None for r in ref_all) / n) < 1e-6
    t = data.draw(st.integers(0, 20))
    check_against(cache, ring_reference(window, n, calls, t), indices, t)


def test_teacher_never_mixes_samples():
    n, c = 12, 4
    cache = TeacherCache(n, c, 3)
    own = F.one_hot(torch.arange(n) % c, c).float()
    for epoch in range(5):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        cache.record(perm, own[perm], epoch)
    query = torch.tensor([11, 0, 5, 5, 3])
    probs, mask = cache.teacher(query, epoch=5)
    assert mask.all()
    assert torch.equal(probs, own[query])


def test_ring_wraps_around_and_the_current_epoch_never_votes():
    cache = TeacherCache(1, 2, 2)
    value = {e: torch.tensor([[1.0 - 0.1 * e, 0.1 * e]]) for e in range(4)}
    for e in range(3):
        cache.record(torch.tensor([0]), value[e], e)
    # slots now hold epochs 2 and 1 (epoch 0 was overwritten by epoch 2)
    probs, mask = cache.teacher(torch.tensor([0]))
    torch.testing.assert_close(probs, (value[1] + value[2]) / 2)
    probs, _ = cache.teacher(torch.tensor([0]), epoch=3)
    torch.testing.assert_close(probs, (value[1] + value[2]) / 2)
    probs, _ = cache.teacher(torch.tensor([0]), epoch=2)  # window [0, 1]: 0 is gone, 2 is current
    torch.testing.assert_close(probs, value[1])
    probs, mask = cache.teacher(torch.tensor([0]), epoch=1)  # window [-1, 0]: nothing left
    assert not mask.any()
    _, mask = cache.teacher(torch.tensor([0]), epoch=6)  # everything stale
    assert not mask.any() and cache.coverage(6).item() == 0.0


def test_partial_history_votes_with_what_it_has():
    cache = TeacherCache(3, 2, 3)
    cache.record(torch.tensor([0, 1]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 4)
    cache.record(torch.tensor([0]), torch.tensor([[0.0, 1.0]]), 5)
    probs, mask = cache.teacher(torch.tensor([0, 1, 2]), epoch=6)
    assert mask.tolist() == [True, True, False]
    torch.testing.assert_close(probs, torch.tensor([[0.5, 0.5], [0.0, 1.0], [0.5, 0.5]]))
    assert abs(cache.coverage(6).item() - 2 / 3) < 1e-7


def test_record_detaches_and_copies():
    cache = TeacherCache(2, 3, 1)
    logits = torch.randn(2, 3, requires_grad=True)
    probs = F.softmax(logits, -1)
    cache.record(torch.tensor([0, 1]), probs, 0)
    assert not cache.probs.requires_grad
    out, _ = cache.teacher(torch.tensor([0, 1]), epoch=1)
    assert not out.requires_grad
    torch.testing.assert_close(out, probs.detach())


@SETTINGS
@given(record_history())
def test_state_dict_round_trip_is_bit_exact(tmp_path_factory, hist):
    window, n, c, calls = hist
    cache = build(window, n, c, calls)
    path = tmp_path_factory.mktemp("tc") / "cache.pt"
    torch_save(path, cache.state_dict())
    restored = TeacherCache(n, c, window)
    restored.load_state_dict(torch_load(path))
    assert torch.equal(restored.probs, cache.probs)
    assert torch.equal(restored.epochs, cache.epochs)
    idx = torch.arange(n)
    for epoch in (None, 5):
        a, ma = cache.teacher(idx, epoch)
        b, mb = restored.teacher(idx, epoch)
        assert torch.equal(a, b) and torch.equal(ma, mb)


def test_state_dict_of_another_shape_is_a_user_error():
    cache = TeacherCache(5, 3, 2)
    with pytest.raises(UserError, match="window"):
        TeacherCache(5, 3, 3).load_state_dict(cache.state_dict())
    with pytest.raises(UserError):
        TeacherCache(6, 3, 2).load_state_dict(cache.state_dict())
    with pytest.raises(UserError):
        TeacherCache(5, 3, 2).load_state_dict({"probs": cache.probs})
    bad = cache.state_dict()
    bad["probs"] = bad["probs"].double()
    with pytest.raises(UserError):
        TeacherCache(5, 3, 2).load_state_dict(bad)


def test_memory_is_as_documented():
    cache = TeacherCache(50_000, 10, 2)
    assert cache.probs.numel() * cache.probs.element_size() == 2 * 50_000 * 10 * 4 == 4_000_000
    assert cache.nbytes == 4_000_000 + 2 * 50_000 * 8


def test_bad_window_is_a_user_error():
    with pytest.raises(UserError, match="window"):
        TeacherCache(10, 10, 0)


# ---------------------------------------------------------------------------- seed axis
@st.composite
def stacked_history(draw):
    """S, K, N, C and a call sequence of records: per call one epoch, per seed its own random
    subset (all of one size) and probabilities."""
    seeds = draw(st.integers(1, 4))
    window = draw(st.integers(1, 4))
    n = draw(st.integers(1, 8))
    c = draw(st.integers(2, 5))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    epoch = draw(st.integers(0, 3))
    calls = []
    for _ in range(draw(st.integers(0, 10))):
        epoch += draw(st.integers(0, 2))
        size = draw(st.integers(1, n))
        subsets = [draw(st.permutations(range(n)))[:size] for _ in range(seeds)]
        probs = F.softmax(torch.randn(seeds, size, c, generator=gen) * 3, -1)
        calls.append((epoch, torch.tensor(subsets), probs))
    return seeds, window, n, c, calls


@SETTINGS
@given(stacked_history(), st.data())
def test_a_stacked_cache_is_s_independent_single_caches(hist, data):
    """Seed by seed, a cache of S seeds records and looks up exactly what S one-seed caches do."""
    seeds, window, n, c, calls = hist
    stacked = TeacherCache(n, c, window, num_seeds=seeds)
    singles = [TeacherCache(n, c, window) for _ in range(seeds)]
    for epoch, idx, probs in calls:
        stacked.record(idx, probs, epoch)
        for s, single in enumerate(singles):
            single.record(idx[s], probs[s], epoch)
    for s, single in enumerate(singles):
        assert torch.equal(stacked.probs[s], single.probs[0]) and torch.equal(stacked.epochs[s], single.epochs[0])
        view = stacked.seed(s)
        assert torch.equal(view.state_dict()["probs"], single.state_dict()["probs"])
        assert torch.equal(view.state_dict()["epochs"], single.state_dict()["epochs"])
    query = torch.tensor(
        data.draw(st.lists(st.lists(st.integers(0, n - 1), min_size=3, max_size=3), min_size=seeds, max_size=seeds))
    )
    for epoch in (None, data.draw(st.integers(0, 20))):
        probs, mask = stacked.teacher(query, epoch)
        assert probs.shape == (seeds, 3, c) and mask.shape == (seeds, 3)
        coverage = stacked.coverage(epoch)
        for s, single in enumerate(singles):
            want, want_mask = single.teacher(query[s], epoch)
            assert torch.equal(probs[s], want) and torch.equal(mask[s], want_mask)
            assert torch.equal(stacked.seed(s).teacher(query[s], epoch)[0], want)
            assert torch.equal(coverage[s] if seeds > 1 else coverage, single.coverage(epoch))


@SETTINGS
@given(stacked_history(), st.data())
def test_the_tensor_epoch_path_equals_the_int_epoch_path(hist, data):
    """The graph-capturable path (0-dim device epoch, ``active`` switch) records and looks up
    exactly what the python-int path does; ``active`` False leaves the cache untouched."""
    seeds, window, n, c, calls = hist
    by_int = TeacherCache(n, c, window, num_seeds=seeds)
    by_tensor = TeacherCache(n, c, window, num_seeds=seeds)
    for epoch, idx, probs in calls:
        active = data.draw(st.booleans())
        if active:
            by_int.record(idx, probs, epoch)
        by_tensor.record(idx, probs, torch.tensor(epoch), active=torch.tensor(active))
        assert torch.equal(by_int.probs, by_tensor.probs) and torch.equal(by_int.epochs, by_tensor.epochs)
    query = torch.randint(0, n, (seeds, 5), generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    epoch = data.draw(st.integers(0, 20))
    a, ma = by_int.teacher(query, epoch)
    b, mb = by_tensor.teacher(query, torch.tensor(epoch))
    assert torch.equal(a, b) and torch.equal(ma, mb)


def test_a_seed_view_shares_the_buffers_and_checkpoints_as_a_single_run():
    stacked = TeacherCache(4, 3, 2, num_seeds=3)
    single = TeacherCache(4, 3, 2)
    single.record(torch.tensor([0, 2]), torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]), 1)
    stacked.seed(1).load_state_dict(single.state_dict())
    assert torch.equal(stacked.probs[1], single.probs[0]) and torch.equal(stacked.epochs[1], single.epochs[0])
    assert (stacked.epochs[[0, 2]] == -1).all()
    state = stacked.seed(1).state_dict()
    assert set(state) == {"window", "num_samples", "num_classes", "probs", "epochs"}
    assert state["probs"].shape == (2, 4, 3) and state["epochs"].shape == (2, 4)
    with pytest.raises(ValueError, match="seed by seed"):
        stacked.state_dict()
    with pytest.raises(ValueError, match="indices"):
        stacked.teacher(torch.tensor([0, 1]))
    assert TeacherCache.bytes_needed(2, 4, 3, num_seeds=3) == stacked.nbytes


# ---------------------------------------------------------------------------- schedule
@SETTINGS
@given(st.integers(0, 40), st.integers(1, 6))
def test_recording_starts_k_epochs_before_kd(warmup, window):
    start = recording_start_epoch(warmup, window)
    assert start == max(0, warmup - window)
    assert not kd_active(warmup - 1, warmup) and kd_active(warmup, warmup)
    assert recording_active(start, warmup, window) and not recording_active(start - 1, warmup, window)


@pytest.mark.parametrize("warmup,window", [(25, 2), (3, 1), (1, 3), (0, 2)])
def test_schedule_gives_full_votes_from_the_first_kd_epoch(warmup, window):
    """Simulate the search schedule (0-indexed epochs): at paper epoch xi+1 (index warmup)
    every sample's teacher is the mean of epochs warmup-K .. warmup-1 (those that exist)."""
    n, c, epochs = 6, 3, warmup + 3
    cache = TeacherCache(n, c, window)
    out = {e: F.softmax(torch.randn(n, c, generator=torch.Generator().manual_seed(e)), -1) for e in range(epochs)}
    idx = torch.arange(n)
    for e in range(epochs):
        if kd_active(e, warmup):
            probs, mask = cache.teacher(idx, epoch=e)
            previous = [out[j] for j in range(max(0, e - window), e)]
            if previous:
                assert mask.all()
                torch.testing.assert_close(probs, torch.stack(previous).mean(0))
            else:
                assert not mask.any()
        if recording_active(e, warmup, window):
            cache.record(idx, out[e], e)
        else:
            assert e < warmup - window


# ---------------------------------------------------------------------------- device
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_host_sync_on_cuda():
    dev = torch.device("cuda")
    cache = TeacherCache(100, 10, 2, dev)
    idx = torch.arange(16, device=dev)
    logits = torch.randn(16, 10, device=dev, requires_grad=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        cache.record(idx, F.softmax(logits, -1), 0)
        probs, mask = cache.teacher(idx, epoch=1)
        loss = F.cross_entropy(logits, torch.zeros(16, dtype=torch.long, device=dev))
        loss = loss + 1.0 * distillation_loss(logits, probs, mask)
        loss.backward()
        cov = cache.coverage(1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert mask.all() and abs(cov.item() - 0.16) < 1e-6
    moved = TeacherCache(100, 10, 2).to(dev)
    moved.load_state_dict(cache.state_dict())
    assert torch.equal(moved.probs, cache.probs) and moved.device.type == "cuda"
