"""Training the searched cells from scratch: the CIFAR-10 recipe (paper §4.2, DARTS's) and
the ImageNet recipe (paper §4.3, PC-DARTS's), single process or data-parallel under torchrun.

CIFAR-10 (``sd-darts train-cifar``): :class:`~sd_darts.model.NetworkCIFAR` C=36, 20 cells,
600 epochs, batch 96, SGD lr 0.025 with a cosine schedule to 0 (stepped per epoch), momentum
0.9, weight decay 3e-4, gradient-norm clip 5, auxiliary weight 0.4, drop path 0.3 ramped
linearly over the epochs, Cutout 16 after normalisation.  The paper reports the test error of
the final epoch; the best epoch is recorded beside it for information only.

ImageNet (``sd-darts train-imagenet``): :class:`~sd_darts.model.NetworkImageNet` C=48,
14 cells, 250 epochs, global batch 1024, SGD lr 0.5 (5 warm-up epochs, then the PC-DARTS
linear decay to 0, see :func:`imagenet_lr`), momentum 0.9, weight decay 3e-5, label
smoothing 0.1 (training loss only, auxiliary loss included), auxiliary weight 0.4, no drop
path, gradient-norm clip 5; top-1 and top-5 error on the validation set.

Both recipes share one loop (:func:`run_training`):

* everything is validated (settings, genotype, data folder, ``--out`` writability, an
  existing checkpoint's settings) before any file is written;
* epochs are 0-indexed in code; the lr of epoch ``e`` is set before it starts and the drop
  path probability is ``p · e / epochs`` (DARTS);
* every epoch starts by reseeding all RNGs from ``(seed, epoch, rank)`` and the data order is
  a function of ``(seed, epoch)``, so a run interrupted at any point and resumed from its
  last checkpoint (rerun the same command) ends bit-identical to an uninterrupted one, and a
  checkpoint made with one world size resumes with another;
* under torchrun (``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel, the
  training set is split with a DistributedSampler, each rank takes ``batch_size /
  world_size`` images per step (so the global batch is the same for every world size), the
  test set is split without padding and the counts are summed over ranks; only rank 0
  writes files.  BatchNorm statistics are per rank (no SyncBN), as in PC-DARTS.

Outputs in ``--out``: ``config.yaml``, ``checkpoint.pt`` (after every epoch, atomic),
``dvclive/`` (per-epoch metrics), ``metrics.json`` and ``model.pt`` (final weights without
the DDP wrapper, with the genotype and network settings needed to rebuild the network).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import config as cfgmod
from .config import require, setting
from .errors import UserError

log = logging.getLogger("sd_darts.train")

CIFAR_DATASETS = ("cifar10", "digits")
AMP_MODES = ("none", "bf16")


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass
class _RunSettings:
    """Settings of both recipes that concern the run rather than the recipe."""

    seed: int = setting(0, "random seed (model initialisation, data order, augmentation, drop path)")
    max_steps_per_epoch: int | None = setting(None, "cap on training steps per epoch (smoke runs and tests)")
    amp: str = setting("none", "mixed precision: bf16 autocast of the forward pass, or none", choices=AMP_MODES)
    channels_last: bool = setting(
        False, "use the channels_last memory format (faster convolutions on GPUs)", fingerprint=False
    )
    num_workers: int = setting(4, "DataLoader worker processes per rank", fingerprint=False)
    pin_memory: bool = setting(True, "pinned host memory for the loaders (CUDA only)", fingerprint=False)
    progress: bool = setting(True, "show progress bars (or periodic log lines off a terminal)", fingerprint=False)
    device: str = setting("auto", "auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK)", fingerprint=False)

    def _validate_run(self) -> None:
        require(self.seed >= 0, "seed", f"must be non-negative, got {self.seed}")
        require(
            self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
            "max_steps_per_epoch",
            "must be at least 1",
        )
        require(self.num_workers >= 0, "num_workers", f"must be non-negative, got {self.num_workers}")
        require(self.amp in AMP_MODES, "amp", f"must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")

    def _validate_common(self) -> None:
        require(self.epochs >= 1, "epochs", f"must be at least 1, got {self.epochs}")
        require(self.batch_size >= 1, "batch_size", f"must be at least 1, got {self.batch_size}")
        require(self.learning_rate > 0, "learning_rate", f"must be positive, got {self.learning_rate}")
        require(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, "weight_decay", f"must be non-negative, got {self.weight_decay}")
        require(self.grad_clip >= 0, "grad_clip", f"must be non-negative (0 = off), got {self.grad_clip}")
        require(
            self.init_channels >= 2 and self.init_channels % 2 == 0,
            "init_channels",
            f"must be an even number >= 2 (FactorizedReduce halves it), got {self.init_channels}",
        )
        require(
            self.layers >= 3, "layers", f"must be at least 3 (two reduction cells at 1/3 and 2/3), got {self.layers}"
        )
        require(
            self.auxiliary_weight >= 0,
            "auxiliary_weight",
            f"must be non-negative (0 = no auxiliary head), got {self.auxiliary_weight}",
        )
        require(0 <= self.drop_path_prob < 1, "drop_path_prob", f"must be in [0, 1), got {self.drop_path_prob}")
        require(self.cutout_length >= 0, "cutout_length", f"must be non-negative (0 = off), got {self.cutout_length}")
        require(
            bool(self.genotype),
            "genotype",
            "must name a shipped genotype (DARTS_V1, DARTS_V2, SD_DARTS) or a genotype.json",
        )
        self._validate_run()


@dataclass
class _CifarRecipe:
    """The CIFAR-10 recipe's settings (listed before the run settings in ``--help``)."""

    genotype: str = setting("SD_DARTS", "shipped genotype (DARTS_V1, DARTS_V2, SD_DARTS) or path to a genotype.json")
    dataset: str = setting(
        "cifar10", "cifar10, or digits (scikit-learn's bundled digits, offline smoke runs)", choices=CIFAR_DATASETS
    )
    data_root: str = setting(
        "data", "folder holding CIFAR-10 (cifar-10-python.tar.gz or cifar-10-batches-py)", fingerprint=False
    )
    download: bool = setting(False, "download CIFAR-10 through torchvision if it is missing", fingerprint=False)
    image_size: int | None = setting(None, "resize images to this size (digits only; default 32)")
    epochs: int = setting(600, "training epochs")
    batch_size: int = setting(96, "global batch size (split over the ranks under torchrun)")
    learning_rate: float = setting(0.025, "initial SGD learning rate (cosine schedule, stepped per epoch)")
    learning_rate_min: float = setting(0.0, "final learning rate of the cosine schedule")
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(3e-4, "weight decay")
    grad_clip: float = setting(5.0, "gradient-norm clip (0 = off)")
    init_channels: int = setting(36, "initial channels C of the network")
    layers: int = setting(20, "number of cells")
    auxiliary_weight: float = setting(0.4, "weight of the auxiliary head's loss (0 = no auxiliary head)")
    drop_path_prob: float = setting(0.3, "final drop path probability (ramped linearly from 0)")
    cutout_length: int = setting(16, "Cutout square side, applied after normalisation (0 = off)")
    out: str = setting("runs/train_cifar", "output folder", fingerprint=False)

    def validate(self) -> None:
        self._validate_common()
        require(
            0 <= self.learning_rate_min <= self.learning_rate,
            "learning_rate_min",
            f"must be between 0 and --learning-rate ({self.learning_rate}), got {self.learning_rate_min}",
        )
        require(
            self.image_size is None or self.dataset == "digits",
            "image_size",
            "only the digits dataset can be resized (CIFAR-10 is 32x32)",
        )
        require(
            self.image_size is None or self.image_size >= 8, "image_size", f"must be at least 8, got {self.image_size}"
        )
        if self.auxiliary_weight > 0:
            from .model import auxiliary_input_ok

            size = self.input_size
            require(
                auxiliary_input_ok("cifar", size),
                "auxiliary_weight",
                f"the DARTS CIFAR auxiliary head needs 8x8 maps after the second reduction (about 32x32 inputs), "
                f"not {size}x{size} inputs; use --auxiliary-weight 0 or --image-size 32",
            )

    @property
    def input_size(self) -> int:
        return 32 if self.image_size is None else self.image_size


@dataclass
class _ImageNetRecipe:
    """The ImageNet recipe's settings (listed before the run settings in ``--help``)."""

    genotype: str = setting("SD_DARTS", "shipped genotype (DARTS_V1, DARTS_V2, SD_DARTS) or path to a genotype.json")
    dataset: str = setting("imagenet", "ILSVRC2012 from a local folder", choices=("imagenet",))
    data_root: str = setting(
        "data/imagenet", "folder with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG", fingerprint=False
    )
    image_size: int = setting(224, "training crop and evaluation centre-crop size")
    epochs: int = setting(250, "training epochs")
    batch_size: int = setting(1024, "global batch size (split over the ranks under torchrun)")
    learning_rate: float = setting(0.5, "peak SGD learning rate (after warm-up; then linear decay to 0)")
    warmup_epochs: int = setting(5, "epochs of linear learning-rate warm-up (lr·(e+1)/warmup)")
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(3e-5, "weight decay")
    label_smoothing: float = setting(0.1, "label smoothing of the training loss")
    grad_clip: float = setting(5.0, "gradient-norm clip (0 = off)")
    init_channels: int = setting(48, "initial channels C of the network")
    layers: int = setting(14, "number of cells")
    auxiliary_weight: float = setting(0.4, "weight of the auxiliary head's loss (0 = no auxiliary head)")
    drop_path_prob: float = setting(0.0, "final drop path probability (ramped linearly from 0)")
    cutout_length: int = setting(0, "Cutout square side, applied after normalisation (0 = off, as in PC-DARTS)")
    out: str = setting("runs/train_imagenet", "output folder", fingerprint=False)

    def validate(self) -> None:
        self._validate_common()
        require(self.warmup_epochs >= 0, "warmup_epochs", f"must be non-negative, got {self.warmup_epochs}")
        require(0 <= self.label_smoothing < 1, "label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")
        require(self.image_size >= 32, "image_size", f"must be at least 32, got {self.image_size}")
        if self.auxiliary_weight > 0:
            from .model import auxiliary_input_ok

            require(
                auxiliary_input_ok("imagenet", self.image_size),
                "auxiliary_weight",
                f"the DARTS ImageNet auxiliary head needs 7x7 or 8x8 maps after the second reduction "
                f"(inputs of 193 to 256 pixels), not {self.image_size}x{self.image_size}; "
                "use --auxiliary-weight 0 or --image-size 224",
            )

    @property
    def input_size(self) -> int:
        return self.image_size


@dataclass
class TrainCifarConfig(_RunSettings, _CifarRecipe):
    """Settings of ``sd-darts train-cifar``; defaults are the paper's §4.2 (DARTS's recipe)."""


@dataclass
class TrainImageNetConfig(_RunSettings, _ImageNetRecipe):
    """Settings of ``sd-darts train-imagenet``; defaults are the paper's §4.3 (PC-DARTS's recipe)."""


RECIPES = {TrainCifarConfig: "train-cifar", TrainImageNetConfig: "train-imagenet"}


# --------------------------------------------------------------------------------------------
# Schedules and losses
# --------------------------------------------------------------------------------------------


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
    most 5 epochs (smoke runs) decay as ``base · (E − e) / E`` after the warm-up.
    """
    if epoch < warmup_epochs:
        return base_lr * (epoch + 1) / warmup_epochs
    tail = IMAGENET_TAIL_EPOCHS
    if epochs <= tail:
        return base_lr * (epochs - epoch) / epochs
    if epochs - epoch > tail:
        return base_lr * (epochs - tail - epoch) / (epochs - tail)
    return base_lr * (epochs - epoch) / ((epochs - tail) * tail)


def learning_rate_at(cfg, epoch: int) -> float:
    """The recipe's learning rate for 0-indexed ``epoch``."""
    if isinstance(cfg, TrainImageNetConfig):
        return imagenet_lr(epoch, cfg.epochs, cfg.learning_rate, cfg.warmup_epochs)
    return cosine_lr(epoch, cfg.epochs, cfg.learning_rate, cfg.learning_rate_min)


def drop_path_prob_at(cfg, epoch: int) -> float:
    """Linear drop-path ramp of DARTS: ``p · epoch / epochs`` (0 in the first epoch)."""
    return cfg.drop_path_prob * epoch / cfg.epochs


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


# --------------------------------------------------------------------------------------------
# Data parallelism
# --------------------------------------------------------------------------------------------


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


def _all_reduce_sum(t: torch.Tensor, dist_info: DistInfo) -> torch.Tensor:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of one epoch on one rank, independent of how the run got there (resume)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------

METRIC_NAMES = (
    "train/loss",
    "train/top1_error",
    "train/top5_error",
    "test/loss",
    "test/top1_error",
    "test/top5_error",
    "lr",
    "drop_path_prob",
    "epoch_seconds",
)


@dataclass
class TrainResult:
    out: Path
    metrics: dict
    is_main: bool = True


def report_line(result: TrainResult) -> str:
    """One-line summary of a finished run for the terminal."""
    m = result.metrics
    return (
        f"{m['recipe']}: test error {m['test_error']:.2f}% (final epoch; top-5 {m['top5_error']:.2f}%), "
        f"best epoch {m['best_epoch']}: {m['best_test_error']:.2f}%, {m['params_m']:.2f}M params -> {result.out}"
    )


def _load_data(cfg):
    if isinstance(cfg, TrainImageNetConfig):
        from .data.imagenet import load_imagenet

        return load_imagenet(cfg.data_root, image_size=cfg.image_size, cutout_length=cfg.cutout_length)
    from .data import load_eval_data

    return load_eval_data(
        cfg.dataset, cfg.data_root, cutout_length=cfg.cutout_length, image_size=cfg.image_size, download=cfg.download
    )


def build_network(cfg, genotype, num_classes: int) -> nn.Module:
    from .model import NetworkCIFAR, NetworkImageNet

    network = NetworkImageNet if isinstance(cfg, TrainImageNetConfig) else NetworkCIFAR
    return network(cfg.init_channels, num_classes, cfg.layers, cfg.auxiliary_weight > 0, genotype)


def resolve_genotype(name_or_path: str):
    """Load a shipped genotype by name or a ``genotype.json``; it must be a DARTS-space one."""
    from .genotypes import Genotype, load_genotype

    genotype = load_genotype(name_or_path)
    if not isinstance(genotype, Genotype):
        raise UserError(
            f"--genotype {name_or_path} is a {type(genotype).__name__}, not a DARTS-space genotype; "
            "the evaluation networks are built from DARTS cells"
        )
    return genotype


def _device_for(cfg, dist_info: DistInfo) -> torch.device:
    from .runtime import pick_device

    device = pick_device(cfg.device)
    if device.type == "cuda" and dist_info.enabled:
        if dist_info.local_rank >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK={dist_info.local_rank} but only {torch.cuda.device_count()} CUDA devices are visible; "
                "start at most one process per GPU"
            )
        device = torch.device("cuda", dist_info.local_rank)
    return device


class _ShardSampler(torch.utils.data.Sampler):
    """Indices ``rank, rank + world, …``: every test sample is seen once over all ranks."""

    def __init__(self, n: int, rank: int, world_size: int):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, cfg):
    """One SGD step of the recipe: loss = CE(logits) + w_aux · CE(logits_aux) (label smoothing
    on both for ImageNet), backward, gradient-norm clip, step.  Forward under bf16 autocast
    when ``cfg.amp == 'bf16'``.  Returns the detached loss and logits (no host sync)."""
    label_smoothing = getattr(cfg, "label_smoothing", 0.0)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
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


def _train_one_epoch(model, loader, optimizer, cfg, device, steps: int, desc: str, dist_info: DistInfo):
    from .runtime import Progress

    mem = torch.channels_last if cfg.channels_last else torch.contiguous_format
    sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss·n, top1, top5, n
    model.train()
    progress = Progress(desc, total=steps, enabled=cfg.progress and dist_info.is_main)
    for step, (x, y, _index) in enumerate(progress(loader)):
        if step >= steps:
            break
        x = x.to(device, non_blocking=True).contiguous(memory_format=mem)
        y = y.to(device, non_blocking=True)
        loss, logits = train_step(model, optimizer, x, y, cfg)
        n = y.shape[0]
        top1, top5 = topk_correct(logits, y)
        sums += torch.stack(
            [
                loss.double() * n,
                top1.double(),
                top5.double(),
                torch.tensor(float(n), device=device, dtype=torch.float64),
            ]
        )
    return _all_reduce_sum(sums, dist_info)


@torch.no_grad()
def evaluate(
    module: nn.Module, loader, device, amp: bool = False, channels_last: bool = False, dist_info: DistInfo | None = None
) -> torch.Tensor:
    """Sums over the test set (all ranks): ``[loss·n, top-1 hits, top-5 hits, n]``.

    The loss is the plain cross-entropy (no label smoothing), as DARTS and PC-DARTS report.
    """
    mem = torch.channels_last if channels_last else torch.contiguous_format
    sums = torch.zeros(4, device=device, dtype=torch.float64)
    module.eval()
    for x, y, _index in loader:
        x = x.to(device, non_blocking=True).contiguous(memory_format=mem)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            logits, _ = module(x)
        n = y.shape[0]
        top1, top5 = topk_correct(logits, y)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        sums += torch.stack(
            [loss.double(), top1.double(), top5.double(), torch.tensor(float(n), device=device, dtype=torch.float64)]
        )
    return _all_reduce_sum(sums, dist_info or DistInfo())


def _rates(sums: list[float]) -> tuple[float, float, float]:
    loss, top1, top5, n = sums
    n = max(n, 1.0)
    return loss / n, 100.0 * (1.0 - top1 / n), 100.0 * (1.0 - top5 / n)


def _final_metrics(
    cfg, history: list[dict], params: int, dist_info: DistInfo, genotype, num_classes: int
) -> dict[str, Any]:
    from .genotypes import genotype_to_dict

    last = history[-1]
    best = min(history, key=lambda h: (h["test/top1_error"], h["epoch"]))
    return {
        "recipe": RECIPES[type(cfg)],
        "dataset": cfg.dataset,
        "genotype": genotype_to_dict(genotype),
        "genotype_source": cfg.genotype,
        "num_classes": num_classes,
        "init_channels": cfg.init_channels,
        "layers": cfg.layers,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "world_size": dist_info.world_size,
        "params_m": params / 1e6,
        "params": params,
        "test_error": last["test/top1_error"],
        "top5_error": last["test/top5_error"],
        "test_loss": last["test/loss"],
        "train_loss": last["train/loss"],
        "best_test_error": best["test/top1_error"],
        "best_top5_error": best["test/top5_error"],
        "best_epoch": best["epoch"] + 1,
        "train_seconds": sum(h["epoch_seconds"] for h in history),
        "note": (
            "test_error/top5_error: top-1/top-5 error (%) after the final epoch, the number the paper reports; "
            "best_*: the best epoch (1-based best_epoch), for information only (selecting it uses the test set); "
            "params excludes the auxiliary head"
        ),
    }


def run_training(cfg) -> TrainResult:
    """Train (or resume) one network with the recipe of ``cfg``'s type.

    ``cfg`` is a validated :class:`TrainCifarConfig` or :class:`TrainImageNetConfig`.  Every
    check happens before the first file is written; under torchrun the process group is set
    up here (NCCL on CUDA, gloo on CPU) unless the caller already did.
    """
    from . import files
    from .checkpoint import load_checkpoint_if_any, save_checkpoint
    from .data import make_loader
    from .model import count_parameters
    from .runtime import seed_everything
    from .tracking import log_epoch, replay_live

    kind = RECIPES[type(cfg)]
    dist_info = dist_info_from_env()
    if cfg.batch_size % dist_info.world_size:
        raise UserError(
            f"--batch-size {cfg.batch_size} (global) is not divisible by the {dist_info.world_size} processes; "
            "choose a multiple of the world size"
        )
    device = _device_for(cfg, dist_info)
    genotype = resolve_genotype(cfg.genotype)
    out = files.check_writable_dir(cfg.out)
    data = _load_data(cfg)
    ckpt_path = out / "checkpoint.pt"
    ckpt = load_checkpoint_if_any(ckpt_path, cfg, kind)

    import torch.distributed as dist

    own_group = dist_info.enabled and not dist.is_initialized()
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    if own_group:
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            init_method="env://",
            rank=dist_info.rank,
            world_size=dist_info.world_size,
        )
    try:
        if dist_info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            files.write_yaml(out / "config.yaml", cfgmod.to_dict(cfg))
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        seed_everything(cfg.seed)
        model = build_network(cfg, genotype, data.num_classes).to(device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        params = count_parameters(model)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        start_epoch, history = 0, []
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            start_epoch = int(ckpt["epochs_done"])
            history = [dict(h) for h in ckpt["history"]]
            if dist_info.is_main:
                log.info("resuming %s after epoch %d of %d", out, start_epoch, cfg.epochs)
        if dist_info.is_main:
            log.info(
                "%s: %s, %d cells, C=%d, %.2fM parameters (without the auxiliary head), %d process(es)",
                kind,
                cfg.genotype,
                cfg.layers,
                cfg.init_channels,
                params / 1e6,
                dist_info.world_size,
            )

        train_model: nn.Module = model
        if dist_info.enabled:
            train_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        pin = cfg.pin_memory and device.type == "cuda"
        per_rank_batch = cfg.batch_size // dist_info.world_size
        train_sampler = None
        if dist_info.enabled:
            train_sampler = torch.utils.data.distributed.DistributedSampler(
                data.train, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True, seed=cfg.seed
            )
        test_sampler = (
            _ShardSampler(len(data.test), dist_info.rank, dist_info.world_size) if dist_info.enabled else None
        )
        test_loader = make_loader(
            data.test,
            per_rank_batch,
            shuffle=False,
            seed=cfg.seed,
            epoch=0,
            num_workers=cfg.num_workers,
            pin_memory=pin,
            sampler=test_sampler,
        )

        live = replay_live(out / "dvclive", history, METRIC_NAMES) if dist_info.is_main else None
        try:
            for epoch in range(start_epoch, cfg.epochs):
                started = time.perf_counter()
                lr = learning_rate_at(cfg, epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                model.drop_path_prob = drop_path_prob_at(cfg, epoch)
                seed_everything(_epoch_seed(cfg.seed, epoch, dist_info.rank))
                if train_sampler is not None:
                    train_sampler.set_epoch(epoch)
                train_loader = make_loader(
                    data.train,
                    per_rank_batch,
                    shuffle=train_sampler is None,
                    seed=cfg.seed,
                    epoch=epoch,
                    num_workers=cfg.num_workers,
                    drop_last=False,
                    pin_memory=pin,
                    sampler=train_sampler,
                )
                steps = (
                    len(train_loader)
                    if cfg.max_steps_per_epoch is None
                    else min(len(train_loader), cfg.max_steps_per_epoch)
                )
                train_sums = _train_one_epoch(
                    train_model,
                    train_loader,
                    optimizer,
                    cfg,
                    device,
                    steps,
                    f"{kind} epoch {epoch + 1}/{cfg.epochs}",
                    dist_info,
                )
                test_sums = evaluate(
                    model,
                    test_loader,
                    device,
                    amp=cfg.amp == "bf16",
                    channels_last=cfg.channels_last,
                    dist_info=dist_info,
                )
                # One host synchronisation per epoch.
                train_vals, test_vals = torch.stack([train_sums, test_sums]).tolist()
                train_loss, train_e1, train_e5 = _rates(train_vals)
                test_loss, test_e1, test_e5 = _rates(test_vals)
                row = {
                    "epoch": epoch,
                    "train/loss": train_loss,
                    "train/top1_error": train_e1,
                    "train/top5_error": train_e5,
                    "test/loss": test_loss,
                    "test/top1_error": test_e1,
                    "test/top5_error": test_e5,
                    "lr": lr,
                    "drop_path_prob": model.drop_path_prob,
                    "epoch_seconds": time.perf_counter() - started,
                }
                history.append(row)
                if dist_info.is_main:
                    log.info(
                        "epoch %d/%d: lr %.3g | train loss %.4f err %.2f%% | test loss %.4f top-1 err %.2f%% "
                        "top-5 err %.2f%% | %.1fs",
                        epoch + 1,
                        cfg.epochs,
                        lr,
                        train_loss,
                        train_e1,
                        test_loss,
                        test_e1,
                        test_e5,
                        row["epoch_seconds"],
                    )
                    state = {
                        "epochs_done": epoch + 1,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "history": history,
                        "world_size": dist_info.world_size,
                    }
                    save_checkpoint(ckpt_path, cfg, kind, state)
                    log_epoch(live, epoch, row, METRIC_NAMES)
        finally:
            if live is not None:
                live.end()

        metrics = _final_metrics(cfg, history, params, dist_info, genotype, data.num_classes)
        if dist_info.is_main:
            from .genotypes import genotype_to_dict

            files.torch_save(
                out / "model.pt",
                {
                    "format": "sd-darts-weights-v1",
                    "recipe": kind,
                    "state_dict": model.state_dict(),
                    "genotype": genotype_to_dict(genotype),
                    "init_channels": cfg.init_channels,
                    "layers": cfg.layers,
                    "num_classes": data.num_classes,
                    "auxiliary": cfg.auxiliary_weight > 0,
                },
            )
            files.write_json(out / "metrics.json", metrics)
            log.info(
                "%s done: final-epoch top-1 error %.2f%% (top-5 %.2f%%); best epoch %d: %.2f%%; %s",
                kind,
                metrics["test_error"],
                metrics["top5_error"],
                metrics["best_epoch"],
                metrics["best_test_error"],
                out,
            )
        if dist_info.enabled:
            dist.barrier()
        return TrainResult(out=out, metrics=metrics, is_main=dist_info.is_main)
    finally:
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


__all__ = [
    "TrainCifarConfig",
    "TrainImageNetConfig",
    "TrainResult",
    "run_training",
    "cosine_lr",
    "imagenet_lr",
    "learning_rate_at",
    "drop_path_prob_at",
    "train_step",
    "classification_loss",
    "topk_correct",
    "evaluate",
    "build_network",
    "resolve_genotype",
    "report_line",
    "DistInfo",
    "dist_info_from_env",
    "METRIC_NAMES",
]
