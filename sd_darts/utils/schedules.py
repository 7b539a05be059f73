"""Learning-rate and drop-path schedules of the search and the evaluation recipes (per epoch)."""

from __future__ import annotations

import math


def cosine_lr(epoch: int, epochs: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Cosine annealing stepped per epoch (DARTS): ``min + ½(base − min)(1 + cos(π·e/E))``.

    Epoch 0 trains at ``base_lr``; the schedule would reach ``min_lr`` at epoch ``E``.
    (quark0/darts steps its scheduler before each epoch with the PyTorch 0.3 semantics, which
    shifts it by one epoch so that the last epoch trains at exactly ``min_lr``; the difference
    is one epoch in 600.)
    """
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * epoch / epochs))


#: PC-DARTS flattens the linear decay over the last epochs: "lr · 1/250 is relatively large".
IMAGENET_TAIL_EPOCHS = 5


def imagenet_lr(epoch: int, epochs: int, base_lr: float, warmup_epochs: int = 5) -> float:
    """Learning rate of epoch ``epoch`` in the PC-DARTS ImageNet recipe (paper §4.3).

    * warm-up, ``e < warmup``: ``base · (e + 1) / warmup`` (0.1, 0.2, …, 0.5 for base 0.5);
    * then linear decay ``base · (E − 5 − e) / (E − 5)`` while ``E − e > 5``;
    * and, over the last 5 epochs, the gentler ``base · (E − e) / (5 · (E − 5))``.

    So for E = 250: epoch 4 → 0.5, epoch 5 → 0.5·240/245, epoch 249 → 0.5/1225.  Runs of at
    most 5 epochs (smoke runs) decay as ``base · (E − e) / E`` after the warm-up.  (PC-DARTS
    warms up from its own schedule's first value; the docs compare the two, docs/evaluation.md.)
    """
    if epoch < warmup_epochs:
        return base_lr * (epoch + 1) / warmup_epochs
    tail = IMAGENET_TAIL_EPOCHS
    if epochs <= tail:
        return base_lr * (epochs - epoch) / epochs
    if epochs - epoch > tail:
        return base_lr * (epochs - tail - epoch) / (epochs - tail)
    return base_lr * (epochs - epoch) / ((epochs - tail) * tail)


def drop_path_prob_at(cfg, epoch: int) -> float:
    """Linear drop-path ramp of DARTS: ``p · epoch / epochs`` (0 in the first epoch)."""
    return cfg.drop_path_prob * epoch / cfg.epochs
