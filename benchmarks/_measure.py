"""Measurements shared by the benchmark scripts (not tests): operator calls, peak memory and
saved-activation memory of one call, and interleaved timing of several variants."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

#: Operators that only make views (no kernel, no data movement); reported separately.
VIEW_OPS = {
    "aten::view",
    "aten::reshape",
    "aten::permute",
    "aten::transpose",
    "aten::t",
    "aten::select",
    "aten::slice",
    "aten::narrow",
    "aten::expand",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::unflatten",
    "aten::flatten",
    "aten::as_strided",
    "aten::split",
    "aten::split_with_sizes",
    "aten::unbind",
    "aten::alias",
    "aten::detach",
    "aten::_unsafe_view",
    "aten::view_as",
    "aten::expand_as",
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_ops(fn: Callable[[], object], device: torch.device) -> dict:
    """Operator calls of one ``fn()``: every ``aten::`` operator the profiler records that is
    not called from inside another ``aten::`` operator (calls from Python and from the autograd
    engine, forward and backward), and those of them that are not pure views."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _sync(device)
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    counts: Counter[str] = Counter()
    for e in prof.events():
        if not e.name.startswith("aten::"):
            continue
        parent = e.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            counts[e.name] += 1
    total = sum(counts.values())
    views = sum(v for k, v in counts.items() if k in VIEW_OPS)
    return {"ops_per_step": total, "compute_ops_per_step": total - views}


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak of the memory ``fn()`` allocates on top of what is allocated before it: CUDA's
    ``max_memory_allocated``; on CPU, the running sum of the profiler's allocation events."""
    _sync(device)
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # An operator's memory usage includes its children's: count each event's own allocations
    # (frees outside any operator are "[memory]" events).
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return int(peak)


def resident_bytes(*objects) -> int:
    """Bytes of distinct tensor storages reachable from modules, tensors and lists/dicts of them."""
    seen: set[int] = set()
    total = 0

    def visit(obj):
        nonlocal total
        if isinstance(obj, torch.nn.Module):
            for t in list(obj.parameters()) + list(obj.buffers()):
                visit(t)
        elif isinstance(obj, torch.Tensor):
            st = obj.untyped_storage()
            if st.data_ptr() not in seen:
                seen.add(st.data_ptr())
                total += st.nbytes()
        elif isinstance(obj, dict):
            for v in obj.values():
                visit(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                visit(v)

    for o in objects:
        visit(o)
    return total


def saved_activation_bytes(fn: Callable[[], object], model: torch.nn.Module) -> dict:
    """Bytes that autograd saves for the backward passes of one ``fn()``, per forward pass of
    ``model`` (a pass starts at each ``model`` call): distinct storages, parameters and buffers
    excluded.  Returns the largest pass and the sum over passes."""
    own = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    passes: list[dict[int, int]] = []

    def start(module, args):
        passes.append({})

    def pack(t):
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if passes and ptr not in own and ptr != 0:
            passes[-1][ptr] = st.nbytes()
        return t

    handle = model.register_forward_pre_hook(start)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
    finally:
        handle.remove()
    sizes = [sum(p.values()) for p in passes]
    return {"saved_bytes_max_pass": max(sizes, default=0), "saved_bytes_all_passes": sum(sizes)}


def time_interleaved(steps: dict[str, Callable[[], object]], device: torch.device, warmup: int, rounds: int) -> dict:
    """Milliseconds per call of every variant, timed round-robin (variant after variant within
    each round, so slow drifts of a shared machine hit them alike): median and mean."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(1000 * (time.perf_counter() - t0))
    return {
        k: {"ms_per_step_median": round(statistics.median(v), 2), "ms_per_step_mean": round(statistics.fmean(v), 2)}
        for k, v in times.items()
    }
