"""Memory a run would need, estimated before it starts, so that an impossible setting
(``--batch-size 100000``, ``--init-channels 4096``, ``--image-size 4096``) is refused with one
line instead of exhausting the machine after files were written.

The network is built on PyTorch's ``meta`` device (shapes only, no memory, no compute) and run
forward once under :func:`torch.autograd.graph.saved_tensors_hooks`: the tensors autograd keeps
for the backward pass are the activation memory of a training step.  Parameters, their
gradients and optimizer state are added on top.  The estimate is compared with what the device
has free (CUDA: ``torch.cuda.mem_get_info``; CPU: ``MemAvailable`` of ``/proc/meminfo``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.nn as nn

from ..errors import UserError

GiB = 2**30


def training_step_bytes(
    build: Callable[[], nn.Module],
    input_shape: tuple[int, ...],
    optimizer_slots: int = 2,
    forward: Callable[[nn.Module, torch.Tensor], object] | None = None,
) -> int:
    """Bytes of one training step of the network ``build()`` on a batch of ``input_shape``.

    Saved activations (each saved tensor counted once), plus the parameters, their gradients
    and ``optimizer_slots`` optimizer buffers per parameter (SGD momentum: 1; Adam: 2).
    """
    with torch.device("meta"):
        model = build()
        x = torch.empty(input_shape)
    saved: dict[int, int] = {}
    keep: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in saved:
            saved[id(t)] = t.numel() * t.element_size()
            keep.append(t)  # keep the object alive so its id is not reused
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        (forward or (lambda m, inp: m(inp)))(model, x)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return sum(saved.values()) + params * (2 + optimizer_slots)


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes (None where it cannot be read)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


#: Upper bound of the bytes a DARTS-family supernet or evaluation network keeps for backward per
#: (sample x channel x cell x pixel): about 1.3 kB measured for the DARTS supernet (10 GiB at
#: batch 64, C = 16, 8 cells, 32x32), doubled.  Used only to skip the exact estimate when even
#: this bound is far below the free memory.
ROUGH_BYTES_PER_UNIT = 2600


def clearly_fits(units: int, device: torch.device, margin: float = 0.25) -> bool:
    """Whether ``units`` x :data:`ROUGH_BYTES_PER_UNIT` is below ``margin`` of the free memory."""
    free = available_bytes(device)
    return free is not None and units * ROUGH_BYTES_PER_UNIT < margin * free


def check_fits(need: int, device: torch.device, what: str, hint: str) -> None:
    """Refuse a run whose estimated memory ``need`` exceeds what ``device`` has free."""
    free = available_bytes(device)
    if free is not None and need > free:
        raise UserError(
            f"{what} would need about {need / GiB:.1f} GiB on {device} but {free / GiB:.1f} GiB are free; {hint}"
        )
