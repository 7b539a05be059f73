"""The SD-DARTS search loop (paper §3.3–3.4, Algorithms 1–2, Table 1).

One loop for every search space (``--space darts|nb201``): per epoch, for every batch of
the weight half, one alpha step on the next batch of the alpha half (:class:`Architect`),
then one weight step (SGD, cosine schedule, gradient clipping).  With ``--method sd-darts``
both objectives get ``λ · KL(student ‖ voting teacher)`` once the ξ warm-up epochs are
over (Eq. 2), the voting teacher being the mean of the supernet's own output probabilities
for the same sample in the previous K epochs, kept in a :class:`~sd_darts.distill.TeacherCache`
filled from the forward passes the search already makes.  ``--method darts`` is plain DARTS,
and ``--sd-lambda 0`` reproduces it bit for bit.

Epochs are 0-indexed in code: epoch index ``e`` is the paper's epoch ``e + 1``; the KD term
is active from index ``warmup_epochs`` (paper epoch ξ + 1) on.

Outputs in ``--out``: ``config.yaml``, ``checkpoint.pt`` (every epoch, atomic, exact resume),
``genotypes/epoch_XXX.json``, ``alphas/epoch_XXX.pt``, ``dvclive/`` (per-epoch metrics),
``genotype.json`` (final) and ``summary.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import config as cfgmod
from .config import require, setting

log = logging.getLogger("sd_darts.search")

METHODS = ("darts", "sd-darts")
KD_DIRECTIONS = ("student_teacher", "teacher_student")


@dataclass
class SearchConfig:
    """Settings of ``sd-darts search``; defaults are the paper's (Table 1, §4.1)."""

    method: str = setting("sd-darts", "search method: plain DARTS or SD-DARTS", choices=METHODS)
    space: str = setting("darts", "search space", choices=("darts", "nb201"))
    dataset: str = setting(
        "cifar10", "search dataset (digits: scikit-learn's bundled digits, offline)", choices=("cifar10", "digits")
    )
    data_root: str = setting(
        "data",
        "folder holding the dataset (CIFAR-10: cifar-10-python.tar.gz or cifar-10-batches-py)",
        fingerprint=False,
    )
    download: bool = setting(False, "download CIFAR-10 through torchvision if it is missing", fingerprint=False)
    train_portion: float = setting(
        0.5, "fraction of the training set that trains the weights; the rest trains the alphas"
    )
    image_size: int | None = setting(None, "resize images to this size (digits only; default: 32)")
    epochs: int = setting(50, "search epochs E")
    batch_size: int = setting(64, "batch size of both halves")
    learning_rate: float = setting(0.025, "initial weight learning rate (SGD, cosine schedule)")
    learning_rate_min: float = setting(0.001, "final weight learning rate of the cosine schedule")
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(3e-4, "weight decay of the supernet weights")
    nesterov: bool = setting(False, "Nesterov momentum for the weights")
    grad_clip: float = setting(5.0, "gradient-norm clip of the weights (0 = off)")
    arch_learning_rate: float = setting(3e-4, "Adam learning rate of the alphas")
    arch_weight_decay: float = setting(1e-3, "Adam weight decay of the alphas")
    arch_beta1: float = setting(0.5, "Adam beta1 of the alphas")
    arch_beta2: float = setting(0.999, "Adam beta2 of the alphas")
    unrolled: bool = setting(False, "second-order (unrolled) alpha gradient instead of first order")
    primitives: str | None = setting(
        None, "comma-separated candidate ops of the DARTS space (default: all 8 DARTS ops, in the DARTS order)"
    )
    init_channels: int | None = setting(None, "supernet initial channels C (default: the space's, 16)")
    layers: int | None = setting(None, "supernet cells (DARTS: 8) or cells per stage N (NB201: 5)")
    warmup_epochs: int = setting(
        25,
        "warm-up epochs ξ before self-distillation starts (ξ=0 and ξ=1 act alike: the first epoch has no earlier epoch to distil from)",
    )
    window: int = setting(2, "voting window K: teacher = mean of the previous K epochs")
    sd_lambda: float = setting(1.0, "weight λ of the KD term in both losses")
    temperature: float = setting(1.0, "distillation temperature T (paper: not stated, 1)")
    kd_direction: str = setting(
        "student_teacher", "KL(student‖teacher) as the paper, or the reverse", choices=KD_DIRECTIONS
    )
    seed: int = setting(2, "random seed")
    max_steps_per_epoch: int | None = setting(None, "cap on steps per epoch (smoke runs and tests)")
    limit_samples: int | None = setting(
        None, "use only the first N training images, split as usual (smoke runs and tests)"
    )
    hessian_every: int = setting(
        0, "compute the dominant Hessian eigenvalue w.r.t. the alphas every N epochs (0 = off)", fingerprint=False
    )
    hessian_batch_size: int = setting(
        64, "size of the fixed, seeded validation batch for the Hessian", fingerprint=False
    )
    hessian_iters: int = setting(
        20, "Lanczos iterations (Hessian-vector products) for the Hessian eigenvalue", fingerprint=False
    )
    num_workers: int = setting(0, "DataLoader worker processes", fingerprint=False)
    device: str = setting("auto", "auto, cpu, cuda or cuda:N", fingerprint=False)
    out: str = setting("runs/search", "output folder", fingerprint=False)

    def validate(self) -> None:
        from .spaces import get_space

        require(self.method in METHODS, "method", f"unknown method {self.method!r}; use darts or sd-darts")
        require(
            self.dataset in ("cifar10", "digits"), "dataset", f"unknown dataset {self.dataset!r}; use cifar10 or digits"
        )
        space = get_space(self.space)
        require(self.epochs >= 1, "epochs", f"must be at least 1, got {self.epochs}")
        require(self.batch_size >= 1, "batch_size", f"must be at least 1, got {self.batch_size}")
        require(0.0 < self.train_portion < 1.0, "train_portion", f"must be between 0 and 1, got {self.train_portion}")
        require(self.learning_rate > 0, "learning_rate", f"must be positive, got {self.learning_rate}")
        require(
            0 <= self.learning_rate_min <= self.learning_rate,
            "learning_rate_min",
            "must be between 0 and --learning-rate",
        )
        require(self.momentum >= 0, "momentum", "must be non-negative")
        require(self.weight_decay >= 0, "weight_decay", "must be non-negative")
        require(self.grad_clip >= 0, "grad_clip", "must be non-negative (0 = off)")
        require(self.arch_learning_rate > 0, "arch_learning_rate", "must be positive")
        require(self.arch_weight_decay >= 0, "arch_weight_decay", "must be non-negative")
        require(0 <= self.arch_beta1 < 1 and 0 <= self.arch_beta2 < 1, "arch_beta1", "Adam betas must be in [0, 1)")
        require(self.sd_lambda >= 0, "sd_lambda", f"must be non-negative, got {self.sd_lambda}")
        require(self.window >= 1, "window", f"must be at least 1, got {self.window}")
        require(self.warmup_epochs >= 0, "warmup_epochs", f"must be non-negative, got {self.warmup_epochs}")
        if self.method == "sd-darts":
            require(
                self.warmup_epochs < self.epochs,
                "warmup_epochs",
                f"must be smaller than --epochs ({self.epochs}), got {self.warmup_epochs}: no epoch would use self-distillation",
            )
        require(self.temperature > 0, "temperature", f"must be positive, got {self.temperature}")
        require(
            self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
            "max_steps_per_epoch",
            "must be at least 1",
        )
        require(self.limit_samples is None or self.limit_samples >= 2, "limit_samples", "must be at least 2")
        require(self.image_size is None or self.image_size >= 8, "image_size", "must be at least 8")
        require(
            self.image_size is None or self.dataset == "digits", "image_size", "only the digits dataset can be resized"
        )
        require(self.hessian_every >= 0, "hessian_every", "must be non-negative (0 = off)")
        require(self.hessian_batch_size >= 1, "hessian_batch_size", "must be at least 1")
        require(self.hessian_iters >= 1, "hessian_iters", "must be at least 1")
        require(self.num_workers >= 0, "num_workers", "must be non-negative")
        if self.primitives is not None:
            require(self.space == "darts", "primitives", "only the darts space takes a custom list of candidate ops")
            ops = [op.strip() for op in self.primitives.split(",") if op.strip()]
            known = tuple(space.primitives)
            for op in ops:
                require(op in known, "primitives", f"unknown op {op!r}; known ops: {', '.join(known)}")
            require(len(set(ops)) == len(ops), "primitives", "an op is listed twice")
            require(any(op != "none" for op in ops), "primitives", "needs at least one op besides none")
            self.primitives = ",".join(ops)
        if self.init_channels is None:
            self.init_channels = space.default_channels
        if self.layers is None:
            self.layers = space.default_layers
        require(self.init_channels >= 1, "init_channels", "must be at least 1")
        require(self.layers >= 1, "layers", "must be at least 1")


@dataclass
class SearchResult:
    out: Path
    genotype: Any
    summary: dict


class SearchObjective:
    """Loss of one batch: cross-entropy plus, once the warm-up is over, λ·KD (Eq. 2).

    Called for the alpha step (validation half), the weight step (training half) and the
    extra forward passes of the second-order architect.  With ``record=True`` the batch's
    output probabilities (at temperature T, detached) are stored in the teacher cache from
    :func:`~sd_darts.distill.recording_start_epoch` on; the voting teacher of a sample only
    uses epochs before the current one, so reading and recording in the same pass is safe.
    """

    def __init__(self, model, cfg: SearchConfig, cache):
        self.model = model
        self.cfg = cfg
        self.cache = cache
        self.epoch = 0
        self.kd_on = False
        self.recording = False
        self.kd_sum = None  # device accumulator of λ-free KD loss over weight steps

    def set_epoch(self, epoch: int) -> None:
        from .distill import kd_active, recording_active

        self.epoch = epoch
        sd = self.cfg.method == "sd-darts"
        self.kd_on = sd and kd_active(epoch, self.cfg.warmup_epochs)
        self.recording = sd and recording_active(epoch, self.cfg.warmup_epochs, self.cfg.window)

    def __call__(self, inputs, targets, indices, params=None, record=False, track_kd=False):
        from .distill import distillation_loss

        if params is None:
            logits = self.model(inputs)
        else:
            logits = torch.func.functional_call(self.model, params, (inputs,), strict=False)
        loss = F.cross_entropy(logits, targets)
        if self.kd_on:
            teacher, mask = self.cache.teacher(indices, self.epoch)
            kd = distillation_loss(
                logits, teacher, mask, temperature=self.cfg.temperature, direction=self.cfg.kd_direction
            )
            loss = loss + self.cfg.sd_lambda * kd
            if track_kd:
                self.kd_sum = self.kd_sum + kd.detach() * inputs.shape[0]
        if record and self.recording:
            self.cache.record(indices, F.softmax(logits.detach() / self.cfg.temperature, dim=-1), self.epoch)
        return loss, logits


HESSIAN_BATCH_SEED = 20230210  # the same validation batch for every epoch, seed and method (Fig. 2)


def run_search(cfg: SearchConfig) -> SearchResult:
    """Run (or resume) a search; everything is validated before anything is written."""
    from . import files
    from .checkpoint import load_checkpoint_if_any, save_checkpoint
    from .data import PersistentIterator, load_search_data, make_loader
    from .distill import TeacherCache
    from .genotypes import count_op, genotype_to_dict, save_genotype
    from .hessian import dominant_eigenvalue, fixed_batch
    from .runtime import Progress, get_rng_state, pick_device, seed_everything, set_rng_state
    from .spaces import get_space
    from .tracking import log_epoch, replay_live

    out = files.check_writable_dir(cfg.out)
    device = pick_device(cfg.device)
    space = get_space(cfg.space)
    data = load_search_data(
        cfg.dataset,
        cfg.data_root,
        portion=cfg.train_portion,
        image_size=cfg.image_size,
        download=cfg.download,
        limit=cfg.limit_samples,
    )
    ckpt_path = out / "checkpoint.pt"
    ckpt = load_checkpoint_if_any(ckpt_path, cfg, "search")

    out.mkdir(parents=True, exist_ok=True)
    files.write_yaml(out / "config.yaml", cfgmod.to_dict(cfg))

    seed_everything(cfg.seed)
    build_options = {"primitives": cfg.primitives.split(",")} if cfg.primitives else {}
    model = space.build(cfg.init_channels, cfg.layers, data.num_classes, **build_options).to(device)
    w_optimizer = torch.optim.SGD(
        model.weights(),
        lr=cfg.learning_rate,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov and cfg.momentum > 0,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(w_optimizer, T_max=cfg.epochs, eta_min=cfg.learning_rate_min)
    cache = None
    if cfg.method == "sd-darts":
        cache = TeacherCache(data.num_samples, data.num_classes, cfg.window, device)
    objective = SearchObjective(model, cfg, cache)
    from .architect import Architect

    architect = Architect(
        model,
        objective,
        arch_learning_rate=cfg.arch_learning_rate,
        arch_weight_decay=cfg.arch_weight_decay,
        betas=(cfg.arch_beta1, cfg.arch_beta2),
        unrolled=cfg.unrolled,
    )

    start_epoch, history = 0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        w_optimizer.load_state_dict(ckpt["w_optimizer"])
        architect.load_state_dict(ckpt["a_optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if cache is not None:
            cache.load_state_dict(ckpt["teacher_cache"])
        set_rng_state(ckpt["rng"])
        start_epoch = int(ckpt["epoch"]) + 1
        history = list(ckpt["history"])
        log.info("resuming %s from epoch %d of %d", out, start_epoch + 1, cfg.epochs)

    alpha_ids = {id(a) for a in model.arch_parameters()}
    pin = device.type == "cuda"
    hessian_batch = None
    if cfg.hessian_every:
        inputs, targets = fixed_batch(data.valid, cfg.hessian_batch_size, seed=HESSIAN_BATCH_SEED)
        hessian_batch = (inputs.to(device), targets.to(device))

    live = replay_live(out / "dvclive", history)
    genotype = model.genotype()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            started = time.perf_counter()
            objective.set_epoch(epoch)
            lr = scheduler.get_last_lr()[0]
            model.train()
            train_loader = make_loader(
                data.train,
                cfg.batch_size,
                shuffle=True,
                seed=cfg.seed,
                epoch=epoch,
                num_workers=cfg.num_workers,
                pin_memory=pin,
            )
            valid_iter = PersistentIterator(
                lambda e, p: make_loader(
                    data.valid,
                    cfg.batch_size,
                    shuffle=True,
                    seed=cfg.seed + 7919,
                    epoch=e,
                    pass_index=p,
                    num_workers=cfg.num_workers,
                    pin_memory=pin,
                )
            )
            valid_iter.reset(epoch)
            zero = torch.zeros((), device=device)
            sums = {
                "train_loss": zero.clone(),
                "train_correct": zero.clone(),
                "valid_loss": zero.clone(),
                "valid_correct": zero.clone(),
            }
            objective.kd_sum = zero.clone()
            n_train = n_valid = 0
            steps = (
                len(train_loader)
                if cfg.max_steps_per_epoch is None
                else min(len(train_loader), cfg.max_steps_per_epoch)
            )
            progress = Progress(f"search epoch {epoch + 1}/{cfg.epochs}", total=steps)
            for step, (x, y, idx) in enumerate(progress(train_loader)):
                if step >= steps:
                    break
                xv, yv, iv = next(valid_iter)
                x, y, idx = (t.to(device, non_blocking=True) for t in (x, y, idx))
                xv, yv, iv = (t.to(device, non_blocking=True) for t in (xv, yv, iv))

                v_loss, v_logits = architect.step((x, y, idx), (xv, yv, iv), lr, w_optimizer)
                sums["valid_loss"] += v_loss * xv.shape[0]
                sums["valid_correct"] += (v_logits.argmax(1) == yv).sum()
                n_valid += xv.shape[0]

                w_optimizer.zero_grad(set_to_none=True)
                loss, logits = objective(x, y, idx, record=True, track_kd=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.weights(), cfg.grad_clip)
                w_optimizer.step()
                sums["train_loss"] += F.cross_entropy(logits.detach(), y) * x.shape[0]
                sums["train_correct"] += (logits.detach().argmax(1) == y).sum()
                n_train += x.shape[0]
            scheduler.step()

            # One host synchronisation per epoch: read the accumulators.
            values = dict(zip(sums, torch.stack(list(sums.values())).tolist()))
            kd_total = float(objective.kd_sum)
            genotype = model.genotype()
            metrics = {
                "train/loss": values["train_loss"] / max(n_train, 1),
                "train/acc": 100.0 * values["train_correct"] / max(n_train, 1),
                "valid/loss": values["valid_loss"] / max(n_valid, 1),
                "valid/acc": 100.0 * values["valid_correct"] / max(n_valid, 1),
                "kd_loss": kd_total / max(n_train, 1),
                "teacher_coverage": float(cache.coverage(epoch + 1)) if cache is not None else 0.0,
                "lr": lr,
                "num_skip_connect": count_op(genotype, "skip_connect"),
                "epoch_seconds": time.perf_counter() - started,
            }
            if hessian_batch is not None and ((epoch + 1) % cfg.hessian_every == 0 or epoch + 1 == cfg.epochs):
                metrics["hessian/eigenvalue"] = dominant_eigenvalue(model, *hessian_batch, iters=cfg.hessian_iters)

            save_genotype(out / "genotypes" / f"epoch_{epoch:03d}.json", genotype)
            files.torch_save(
                out / "alphas" / f"epoch_{epoch:03d}.pt",
                {name: p.detach().cpu().clone() for name, p in model.named_parameters() if id(p) in alpha_ids},
            )
            history.append({"epoch": epoch, **metrics})
            log_epoch(live, epoch, history[-1])
            log.info(
                "epoch %d/%d: train acc %.2f loss %.4f | valid acc %.2f loss %.4f | kd %.4f | skip %d | %.1fs",
                epoch + 1,
                cfg.epochs,
                metrics["train/acc"],
                metrics["train/loss"],
                metrics["valid/acc"],
                metrics["valid/loss"],
                metrics["kd_loss"],
                metrics["num_skip_connect"],
                metrics["epoch_seconds"],
            )
            state = {
                "epoch": epoch,
                "model": model.state_dict(),
                "w_optimizer": w_optimizer.state_dict(),
                "a_optimizer": architect.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": get_rng_state(),
                "history": history,
            }
            if cache is not None:
                state["teacher_cache"] = cache.state_dict()
            save_checkpoint(ckpt_path, cfg, "search", state)
    finally:
        live.end()

    best = max(history, key=lambda h: h["valid/acc"]) if history else None
    summary = {
        "method": cfg.method,
        "space": cfg.space,
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "device": str(device),
        "final_valid_acc": history[-1]["valid/acc"] if history else None,
        "best_valid_acc": best["valid/acc"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "num_skip_connect": count_op(genotype, "skip_connect"),
        "genotype": genotype_to_dict(genotype),
    }
    save_genotype(out / "genotype.json", genotype)
    files.write_json(out / "summary.json", summary)
    return SearchResult(out=out, genotype=genotype, summary=summary)


__all__ = ["SearchConfig", "SearchResult", "SearchObjective", "run_search", "METHODS"]
