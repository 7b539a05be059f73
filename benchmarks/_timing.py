"""Shared timing loop of the benchmark scripts (not a test): warm-up steps, then timed steps
with device synchronisation, and the peak memory of the timed part."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import torch


def time_steps(step: Callable[[], None], device: torch.device, warmup_steps: int, steps: int) -> dict:
    """Run ``step`` ``warmup_steps`` times untimed, then ``steps`` times timed.

    Returns milliseconds per step (median, mean) and peak memory: CUDA's max allocated bytes
    over the timed steps, or the process's peak RSS on CPU.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup_steps):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(1000 * (time.perf_counter() - t0))
    cuda = device.type == "cuda"
    return {
        "ms_per_step_median": round(statistics.median(times), 2),
        "ms_per_step_mean": round(statistics.fmean(times), 2),
        "peak_memory_bytes": int(
            torch.cuda.max_memory_allocated(device)
            if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        ),
        "peak_memory_kind": "cuda_max_allocated" if cuda else "process_max_rss",
    }
