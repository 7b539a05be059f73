"""Data-parallel training under torchrun: rank and world size from the environment, the sums
every rank contributes to, the test-set shards, and per-rank epoch seeds (:mod:`sd_darts.evaluation.train`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError


@dataclass
class DistInfo:
    """Rank and world size of this process (torchrun's environment variables)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as set by torchrun (absent: 1 process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UserError(
            "WORLD_SIZE, RANK and LOCAL_RANK must be integers; launch multi-GPU runs with torchrun"
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK={rank} is not in [0, WORLD_SIZE={world}); launch multi-GPU runs with torchrun")
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def all_reduce_sum(t: torch.Tensor, dist_info: DistInfo) -> torch.Tensor:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def rank_epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of one epoch on one rank, independent of how the run got there (resume)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


class ShardSampler(torch.utils.data.Sampler):
    """Indices ``rank, rank + world, …``: every test sample is seen once over all ranks."""

    def __init__(self, n: int, rank: int, world_size: int):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
