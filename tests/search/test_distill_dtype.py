"""The teacher cache stores probabilities in the supernet's dtype, so the KD term of a float64
supernet is a float64 computation end to end (no float32-rounded teachers)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sd_darts.errors import UserError
from sd_darts.search.distill import TeacherCache, distillation_loss


def direct_kd(student_logits, teacher_logits_by_epoch, temperature, direction):
    """KL of the paper's Eq. (2) against the mean teacher, all in float64, no cache involved."""
    t = torch.stack([F.softmax(x / temperature, -1) for x in teacher_logits_by_epoch]).mean(0)
    log_s = F.log_softmax(student_logits / temperature, -1)
    if direction == "student_teacher":
        kl = (log_s.exp() * (log_s - t.log())).sum(-1)
    else:
        kl = (t * (t.log() - log_s)).sum(-1)
    return kl.mean() * temperature**2


def kd_through_cache(cache, student_logits, teacher_logits_by_epoch, temperature, direction):
    n = student_logits.shape[0]
    indices = torch.arange(n)
    for epoch, logits in enumerate(teacher_logits_by_epoch):
        cache.record(indices, F.softmax(logits / temperature, -1), epoch)
    teacher, mask = cache.teacher(indices, len(teacher_logits_by_epoch))
    assert bool(mask.all())
    return distillation_loss(student_logits, teacher, mask, temperature=temperature, direction=direction)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 6),
    c=st.integers(2, 12),
    window=st.integers(1, 3),
    temperature=st.sampled_from([1.0, 2.0, 4.0]),
    direction=st.sampled_from(["student_teacher", "teacher_student"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_float64_kd_through_the_cache_equals_the_direct_float64_computation(n, c, window, temperature, direction, seed):
    gen = torch.Generator().manual_seed(seed)
    student = torch.randn(n, c, generator=gen, dtype=torch.float64) * 3
    teachers = [torch.randn(n, c, generator=gen, dtype=torch.float64) * 3 for _ in range(window)]
    want = direct_kd(student, teachers, temperature, direction)
    cache = TeacherCache(n, c, window, dtype=torch.float64)
    got = kd_through_cache(cache, student, teachers, temperature, direction)
    assert cache.probs.dtype == cache.dtype == torch.float64 and got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)


def test_a_float32_cache_would_round_the_float64_teacher():
    """The default (float32) cache is what a float64 run used before: its KD misses by ~1e-8."""
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(8, 10, generator=gen, dtype=torch.float64) * 3
    teachers = [torch.randn(8, 10, generator=gen, dtype=torch.float64) * 3]
    want = direct_kd(student, teachers, 1.0, "student_teacher")
    got = kd_through_cache(TeacherCache(8, 10, 1), student, teachers, 1.0, "student_teacher")
    assert (got - want).abs().item() > 1e-12


def test_gradient_of_the_float64_kd_term_matches_the_direct_one():
    gen = torch.Generator().manual_seed(1)
    student = (torch.randn(5, 7, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    teachers = [torch.randn(5, 7, generator=gen, dtype=torch.float64) for _ in range(2)]
    (g_cache,) = torch.autograd.grad(
        kd_through_cache(TeacherCache(5, 7, 2, dtype=torch.float64), student, teachers, 2.0, "student_teacher"),
        student,
    )
    (g_direct,) = torch.autograd.grad(direct_kd(student, teachers, 2.0, "student_teacher"), student)
    torch.testing.assert_close(g_cache, g_direct, rtol=0, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_bytes_needed_and_nbytes_follow_the_dtype(dtype):
    cache = TeacherCache(50, 10, 2, dtype=dtype, num_seeds=3)
    assert cache.nbytes == TeacherCache.bytes_needed(2, 50, 10, 3, dtype=dtype)
    assert cache.nbytes == 3 * 2 * 50 * (10 * cache.probs.element_size() + 8)
    assert cache.seed(1).dtype == dtype


def test_bytes_needed_default_is_float32_as_before():
    assert TeacherCache.bytes_needed(2, 50_000, 10) == 4_000_000 + 2 * 50_000 * 8
    assert TeacherCache.bytes_needed(2, 50_000, 10, dtype=torch.float64) == 8_000_000 + 2 * 50_000 * 8


def test_record_and_teacher_keep_the_cache_dtype():
    cache = TeacherCache(3, 4, 2, dtype=torch.float64)
    probs = F.softmax(torch.randn(3, 4, dtype=torch.float64), -1)
    cache.record(torch.arange(3), probs, 0)
    out, mask = cache.teacher(torch.arange(3), 1)
    assert out.dtype == torch.float64 and bool(mask.all())
    assert torch.equal(out, probs)  # a float64 teacher is stored bit for bit


def test_checkpoint_of_the_same_dtype_round_trips_and_another_dtype_is_one_line():
    cache = TeacherCache(4, 3, 2, dtype=torch.float64)
    cache.record(torch.arange(4), F.softmax(torch.randn(4, 3, dtype=torch.float64), -1), 0)
    restored = TeacherCache(4, 3, 2, dtype=torch.float64)
    restored.load_state_dict(cache.state_dict())
    assert torch.equal(restored.probs, cache.probs) and torch.equal(restored.epochs, cache.epochs)
    for other in (TeacherCache(4, 3, 2), TeacherCache(4, 3, 2, dtype=torch.float16)):
        with pytest.raises(UserError) as err:
            other.load_state_dict(cache.state_dict())
        msg = str(err.value)
        assert "torch.float64" in msg and str(other.dtype) in msg and "\n" not in msg
        assert "start a new run folder" in msg


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, "float64", None])
def test_a_dtype_that_is_not_floating_point_is_a_user_error(dtype):
    with pytest.raises(UserError, match="floating-point") as err:
        TeacherCache(4, 3, 2, dtype=dtype)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="floating-point"):
        TeacherCache.bytes_needed(2, 4, 3, dtype=dtype)


def test_distillation_loss_computes_in_the_logits_dtype_at_least_float32():
    teacher = F.softmax(torch.randn(4, 5), -1)
    mask = torch.ones(4, dtype=torch.bool)
    for logits_dtype, want in [
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
    ]:
        kd = distillation_loss(torch.randn(4, 5).to(logits_dtype), teacher.double(), mask)
        assert kd.dtype == want, logits_dtype
