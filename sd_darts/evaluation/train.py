"""Training the searched cells from scratch (CIFAR-10 §4.2, ImageNet §4.3), one process or DDP.

:func:`run_training` reads top to bottom: :func:`prepare` checks everything before any file is
written, then :func:`train_one_epoch` and the test pass per epoch with a checkpoint after each,
then :func:`finish`; the step and the test pass: :mod:`sd_darts.evaluation.steps`.  Every epoch
reseeds from ``(seed, epoch, rank)`` so a resumed run ends bit-identical; outputs, resume and
multi-GPU rules: docs/evaluation.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from ..data import EvalData, make_loader
from ..errors import UserError
from ..genotypes import Genotype, genotype_to_dict
from ..utils import config as cfgmod
from ..utils import files
from ..utils.checkpoint import check_epoch, load_checkpoint_if_any, restore, save_checkpoint
from ..utils.memory import check_fits, clearly_fits, training_step_bytes
from ..utils.runtime import Progress, interrupted, pick_device, seed_everything
from ..utils.schedules import drop_path_prob_at
from ..utils.tracking import log_epoch, replay_live
from .distributed import DistInfo, ShardSampler, all_reduce_sum, dist_info_from_env, rank_epoch_seed
from .networks import count_parameters
from .recipes import CifarRecipe, TrainCifarConfig, TrainImageNetConfig, recipe_for, resolve_genotype
from .steps import batch_sums, error_rates, evaluate, train_step, use_bf16, use_channels_last

log = logging.getLogger("sd_darts.evaluation.train")


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
CHECKPOINT_KEYS = {"epochs_done": int, "model": dict, "optimizer": dict, "history": list}


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


def _device_for(cfg, dist_info: DistInfo) -> torch.device:
    device = pick_device(cfg.device)
    if device.type == "cuda" and dist_info.enabled:
        if dist_info.local_rank >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK={dist_info.local_rank} but only {torch.cuda.device_count()} CUDA devices are visible; "
                "start at most one process per GPU"
            )
        device = torch.device("cuda", dist_info.local_rank)
    return device


@dataclass
class TrainRun:
    """Everything a training holds between epochs (built by :func:`prepare`)."""

    cfg: Any
    recipe: CifarRecipe
    out: Path
    device: torch.device
    dist_info: DistInfo
    genotype: Genotype
    data: EvalData
    model: nn.Module
    optimizer: torch.optim.Optimizer
    params: int
    start_epoch: int = 0
    history: list[dict] = field(default_factory=list)

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.pt"


def prepare(cfg, dist_info: DistInfo) -> TrainRun:
    """Check every input and build the run; writes nothing."""
    recipe = recipe_for(cfg)
    if cfg.batch_size % dist_info.world_size:
        raise UserError(
            f"--batch-size {cfg.batch_size} (global) is not divisible by the {dist_info.world_size} processes; "
            "choose a multiple of the world size"
        )
    device = _device_for(cfg, dist_info)
    genotype = resolve_genotype(cfg.genotype)
    out = files.check_writable_dir(cfg.out)
    data = recipe.load_data()
    shape = (cfg.batch_size // dist_info.world_size, data.channels, data.image_size, data.image_size)
    units = shape[0] * cfg.init_channels * cfg.layers * data.image_size**2
    need = (
        0
        if clearly_fits(units, device)
        else training_step_bytes(
            lambda: recipe.build_network(genotype, data.num_classes),
            shape,
            optimizer_slots=1,
            forward=lambda m, x: m(x)[0],
        )
    )
    check_fits(need, device, f"{recipe.name}", "lower --batch-size, --init-channels, --layers or --image-size")
    ckpt = load_checkpoint_if_any(out / "checkpoint.pt", cfg, recipe.name, CHECKPOINT_KEYS)

    seed_everything(cfg.seed)
    model = recipe.build_network(genotype, data.num_classes).to(device)
    if use_channels_last(cfg, device):
        model = model.to(memory_format=torch.channels_last)
    fused = device.type == "cuda" or None  # CUDA: one kernel for the whole update (PyTorch's fused SGD)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused
    )
    run = TrainRun(cfg, recipe, out, device, dist_info, genotype, data, model, optimizer, count_parameters(model))
    if ckpt is not None:
        path = run.ckpt_path
        run.start_epoch = check_epoch(path, ckpt["epochs_done"], cfg.epochs, "epochs_done")
        restore(path, "model", lambda: model.load_state_dict(ckpt["model"]))
        restore(path, "optimizer", lambda: optimizer.load_state_dict(ckpt["optimizer"]))
        run.history = restore(path, "history", lambda: [dict(h) for h in ckpt["history"]])
        check_epoch(path, len(run.history), run.start_epoch, "history length")
    return run


def _loaders(run: TrainRun, epoch: int, train_sampler, test_loader=None):
    cfg, dist_info = run.cfg, run.dist_info
    pin = cfg.pin_memory and run.device.type == "cuda"
    per_rank = cfg.batch_size // dist_info.world_size
    if test_loader is None:
        test_sampler = (
            ShardSampler(len(run.data.test), dist_info.rank, dist_info.world_size) if dist_info.enabled else None
        )
        return make_loader(
            run.data.test,
            per_rank,
            shuffle=False,
            seed=cfg.seed,
            epoch=0,
            num_workers=cfg.num_workers,
            pin_memory=pin,
            sampler=test_sampler,
        )
    if train_sampler is not None:
        train_sampler.set_epoch(epoch)
    return make_loader(
        run.data.train,
        per_rank,
        shuffle=train_sampler is None,
        seed=cfg.seed,
        epoch=epoch,
        num_workers=cfg.num_workers,
        pin_memory=pin,
        sampler=train_sampler,
    )


def train_one_epoch(run: TrainRun, train_model: nn.Module, loader, epoch: int) -> torch.Tensor:
    """One epoch of :func:`train_step`; returns ``[loss·n, top-1 hits, top-5 hits, n]`` over all ranks."""
    cfg, device = run.cfg, run.device
    mem = torch.channels_last if use_channels_last(cfg, device) else torch.contiguous_format
    sums = torch.zeros(3, device=device, dtype=torch.float64)
    n = 0
    steps = len(loader) if cfg.max_steps_per_epoch is None else min(len(loader), cfg.max_steps_per_epoch)
    train_model.train()
    progress = Progress(
        f"{run.recipe.name} epoch {epoch + 1}/{cfg.epochs}", total=steps, enabled=cfg.progress and run.dist_info.is_main
    )
    for step, (x, y, _index) in enumerate(progress(loader)):
        if step >= steps:
            break
        x = x.to(device, non_blocking=True).contiguous(memory_format=mem)
        y = y.to(device, non_blocking=True)
        loss, logits = train_step(train_model, run.optimizer, x, y, cfg)
        sums += batch_sums(loss * y.shape[0], logits, y)
        n += y.shape[0]
    return all_reduce_sum(torch.cat([sums, sums.new_tensor([n])]), run.dist_info)


def _save_epoch(run: TrainRun, row: dict, live) -> None:
    state = {
        "epochs_done": row["epoch"] + 1,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "history": run.history,
        "world_size": run.dist_info.world_size,
    }
    save_checkpoint(run.ckpt_path, run.cfg, run.recipe.name, state)
    log_epoch(live, row["epoch"], row, METRIC_NAMES)


def final_metrics(run: TrainRun) -> dict[str, Any]:
    cfg, history = run.cfg, run.history
    last = history[-1]
    best = min(history, key=lambda h: (h["test/top1_error"], h["epoch"]))
    return {
        "recipe": run.recipe.name,
        "dataset": cfg.dataset,
        "genotype": genotype_to_dict(run.genotype),
        "genotype_source": cfg.genotype,
        "num_classes": run.data.num_classes,
        "init_channels": cfg.init_channels,
        "layers": cfg.layers,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "world_size": run.dist_info.world_size,
        "evaluated_on": "held-out part of the training set" if getattr(cfg, "holdout_portion", None) else "test set",
        "params_m": run.params / 1e6,
        "params": run.params,
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


def finish(run: TrainRun) -> TrainResult:
    """Write ``model.pt`` and ``metrics.json`` (rank 0)."""
    metrics = final_metrics(run)
    if run.dist_info.is_main:
        cfg = run.cfg
        files.torch_save(
            run.out / "model.pt",
            {
                "format": "sd-darts-weights-v1",
                "recipe": run.recipe.name,
                "state_dict": run.model.state_dict(),
                "genotype": genotype_to_dict(run.genotype),
                "init_channels": cfg.init_channels,
                "layers": cfg.layers,
                "num_classes": run.data.num_classes,
                "auxiliary": cfg.auxiliary_weight > 0,
            },
        )
        files.write_json(run.out / "metrics.json", metrics)
        log.info(
            "%s done: final-epoch top-1 error %.2f%% (top-5 %.2f%%); best epoch %d: %.2f%%; %s",
            run.recipe.name,
            metrics["test_error"],
            metrics["top5_error"],
            metrics["best_epoch"],
            metrics["best_test_error"],
            run.out,
        )
    return TrainResult(out=run.out, metrics=metrics, is_main=run.dist_info.is_main)


def _train(run: TrainRun) -> None:
    cfg, dist_info, model = run.cfg, run.dist_info, run.model
    train_model: nn.Module = model
    if dist_info.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[run.device.index] if run.device.type == "cuda" else None
        )
    drop_prob = None
    if cfg.compile:
        # the drop-path probability as a device tensor: changing it every epoch does not recompile
        drop_prob = torch.zeros((), device=run.device)
        model.drop_path_prob = drop_prob
        train_model = torch.compile(train_model)
    train_sampler = None
    if dist_info.enabled:
        train_sampler = torch.utils.data.distributed.DistributedSampler(
            run.data.train, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True, seed=cfg.seed
        )
    test_loader = _loaders(run, 0, train_sampler)
    live = replay_live(run.out / "dvclive", run.history, METRIC_NAMES) if dist_info.is_main else None
    try:
        for epoch in range(run.start_epoch, cfg.epochs):
            started = time.perf_counter()
            lr = run.recipe.learning_rate(epoch)
            for group in run.optimizer.param_groups:
                group["lr"] = lr
            if drop_prob is not None:
                drop_prob.fill_(drop_path_prob_at(cfg, epoch))
            else:
                model.drop_path_prob = drop_path_prob_at(cfg, epoch)
            seed_everything(rank_epoch_seed(cfg.seed, epoch, dist_info.rank))
            train_loader = _loaders(run, epoch, train_sampler, test_loader)
            train_sums = train_one_epoch(run, train_model, train_loader, epoch)
            test_sums = evaluate(
                model,
                test_loader,
                run.device,
                amp=use_bf16(cfg, run.device),
                channels_last=use_channels_last(cfg, run.device),
                dist_info=dist_info,
            )
            train_vals, test_vals = torch.stack([train_sums, test_sums]).tolist()  # one host sync per epoch
            train_loss, train_e1, train_e5 = error_rates(train_vals)
            test_loss, test_e1, test_e5 = error_rates(test_vals)
            row = {
                "epoch": epoch,
                "train/loss": train_loss,
                "train/top1_error": train_e1,
                "train/top5_error": train_e5,
                "test/loss": test_loss,
                "test/top1_error": test_e1,
                "test/top5_error": test_e5,
                "lr": lr,
                "drop_path_prob": drop_path_prob_at(cfg, epoch),
                "epoch_seconds": time.perf_counter() - started,
            }
            run.history.append(row)
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
                _save_epoch(run, row, live)
    finally:
        if live is not None:
            live.end()


def run_training(cfg) -> TrainResult:
    """Train (or resume) one network with the recipe of ``cfg`` (:func:`~sd_darts.evaluation.recipes.recipe_for`).

    Every check happens before the first file is written; under torchrun the process group is
    set up here (NCCL on CUDA, gloo on CPU) unless the caller already did.
    """
    dist_info = dist_info_from_env()
    lock = files.RunLock(cfg.out)
    if dist_info.is_main and Path(cfg.out).is_dir():
        lock.acquire()
    own_group = False
    try:
        run = prepare(cfg, dist_info)
        own_group = dist_info.enabled and not dist.is_initialized()
        if run.device.type == "cuda" and run.device.index is not None:
            torch.cuda.set_device(run.device)
        if own_group:
            dist.init_process_group(
                backend="nccl" if run.device.type == "cuda" else "gloo",
                init_method="env://",
                rank=dist_info.rank,
                world_size=dist_info.world_size,
            )
        if dist_info.is_main:
            run.out.mkdir(parents=True, exist_ok=True)
            lock.acquire()
            files.remove_stale_temporaries(run.out)
            files.write_yaml(run.out / "config.yaml", cfgmod.to_dict(cfg))
            if run.start_epoch:
                log.info("resuming %s after epoch %d of %d", run.out, run.start_epoch, cfg.epochs)
            log.info(
                "%s: %s, %d cells, C=%d, %.2fM parameters (without the auxiliary head), %d process(es)",
                run.recipe.name,
                cfg.genotype,
                cfg.layers,
                cfg.init_channels,
                run.params / 1e6,
                dist_info.world_size,
            )
        if run.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        try:
            _train(run)
            result = finish(run)
        except KeyboardInterrupt as exc:
            done = len(run.history)
            saved = f"{run.ckpt_path} holds epoch {done}/{cfg.epochs}" if done else "no epoch was completed"
            raise interrupted(exc, f"{saved}; rerun the same command to resume") from None
        if dist_info.enabled:
            dist.barrier()
        return result
    finally:
        lock.release()
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


__all__ = [
    "TrainCifarConfig",
    "TrainImageNetConfig",
    "TrainResult",
    "TrainRun",
    "run_training",
    "prepare",
    "train_one_epoch",
    "finish",
    "report_line",
    "DistInfo",
    "dist_info_from_env",
    "METRIC_NAMES",
]
