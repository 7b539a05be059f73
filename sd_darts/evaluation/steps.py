"""One training step and one pass over the test set of the evaluation recipes, and what they measure.

:func:`train_step` is the recipe's SGD step, :func:`evaluate` the test pass; both report per-batch
sums ``[loss·n, top-1 hits, top-5 hits]`` (:func:`batch_sums`) on the device, and
:func:`error_rates` turns an epoch's summed ``[loss·n, top-1 hits, top-5 hits, n]`` into the loss
and the error rates.  The loop around them: :mod:`sd_darts.evaluation.train`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .distributed import DistInfo, all_reduce_sum


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy with label smoothing ε (Szegedy et al. 2016; PC-DARTS ImageNet, ε = 0.1).

    The target distribution is ``(1 − ε)·onehot + ε/K``; the loss is the batch mean of
    ``−Σ_k q_k log p_k``, identical to DARTS's ``CrossEntropyLabelSmooth``.  Computed in float32.
    """
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """Number of samples whose target is among the top-k logits, per k (k capped at #classes)."""
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hit = pred.eq(targets.unsqueeze(1))
    return [hit[:, : min(k, maxk)].any(dim=1).sum() for k in ks]


def use_bf16(cfg, device: torch.device) -> bool:
    """``--amp bf16``, or ``auto`` on CUDA (bf16 autocast of the forward pass)."""
    return cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")


def use_channels_last(cfg, device: torch.device) -> bool:
    """``--channels-last``, or by default on CUDA."""
    return cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, cfg):
    """One SGD step of the recipe: loss = CE(logits) + w_aux · CE(logits_aux) (label smoothing
    on both for ImageNet), backward, gradient-norm clip, step.  Forward under bf16 autocast
    when :func:`use_bf16`.  Returns the detached loss and logits (no host sync)."""
    label_smoothing = getattr(cfg, "label_smoothing", 0.0)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=use_bf16(cfg, x.device)):
        logits, logits_aux = model(x)
    loss = classification_loss(logits, y, label_smoothing)
    if logits_aux is not None:
        loss = loss + cfg.auxiliary_weight * classification_loss(logits_aux, y, label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return loss.detach(), logits.detach()


def batch_sums(loss_sum: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[loss·n, top-1 hits, top-5 hits]`` of one batch as a float64 device tensor (no host sync)."""
    top1, top5 = topk_correct(logits, y)
    return torch.stack([loss_sum.double(), top1.double(), top5.double()])


@torch.no_grad()
def evaluate(
    module: nn.Module, loader, device, amp: bool = False, channels_last: bool = False, dist_info: DistInfo | None = None
) -> torch.Tensor:
    """Sums over the test set (all ranks): ``[loss·n, top-1 hits, top-5 hits, n]``.

    The loss is the plain cross-entropy (no label smoothing), as DARTS and PC-DARTS report.
    """
    mem = torch.channels_last if channels_last else torch.contiguous_format
    sums = torch.zeros(3, device=device, dtype=torch.float64)
    n = 0
    module.eval()
    for x, y, _index in loader:
        x = x.to(device, non_blocking=True).contiguous(memory_format=mem)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            logits, _ = module(x)
        sums += batch_sums(F.cross_entropy(logits.float(), y, reduction="sum"), logits, y)
        n += y.shape[0]
    return all_reduce_sum(torch.cat([sums, sums.new_tensor([n])]), dist_info or DistInfo())


def error_rates(sums: list[float]) -> tuple[float, float, float]:
    """Loss, top-1 and top-5 error (%) of summed ``[loss·n, top-1 hits, top-5 hits, n]``."""
    loss, top1, top5, n = sums
    n = max(n, 1.0)
    return loss / n, 100.0 * (1.0 - top1 / n), 100.0 * (1.0 - top5 / n)


__all__ = [
    "classification_loss",
    "topk_correct",
    "use_bf16",
    "use_channels_last",
    "train_step",
    "batch_sums",
    "evaluate",
    "error_rates",
]
