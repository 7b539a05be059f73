"""The SD-DARTS search (paper §3.3–3.4, Algorithms 1–2, Table 1).

One loop for every search space (``--space darts|nb201``): per epoch, for every batch of the
weight half, one alpha step on the next batch of the alpha half (:class:`Architect`), then one
weight step (SGD, cosine schedule, gradient clipping).  With ``--method sd-darts`` both
objectives get ``λ · KL(student ‖ voting teacher)`` once the ξ warm-up epochs are over (Eq. 2),
the voting teacher being the mean of the supernet's own output probabilities for the same
sample in the previous K epochs, kept in a :class:`~sd_darts.distill.TeacherCache` filled from
the forward passes the search already makes.  ``--method darts`` is plain DARTS, and
``--sd-lambda 0`` reproduces it bit for bit.

Epochs are 0-indexed in code: epoch index ``e`` is the paper's epoch ``e + 1``; the KD term is
active from index ``warmup_epochs`` (paper epoch ξ + 1) on.

The loop reads top to bottom: :func:`prepare` checks and builds everything (writing nothing),
:func:`run_search` takes the run folder's lock and runs :func:`train_epoch` /
:func:`end_of_epoch` per epoch, then :func:`finish` measures the supernet in eval mode on the
whole alpha half and writes the final genotype and summary.

Outputs in ``--out``: ``config.yaml``, ``checkpoint.pt`` (every epoch, atomic, exact resume),
``genotypes/epoch_XXX.json``, ``alphas/epoch_XXX.pt``, ``dvclive/`` (per-epoch metrics),
``genotype.json`` (final) and ``summary.json``.

The settings live in :mod:`sd_darts.search_config`, the objective in :mod:`sd_darts.distill`,
the alpha step in :mod:`sd_darts.architect`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import config as cfgmod
from . import files
from .architect import Architect
from .checkpoint import check_epoch, load_checkpoint_if_any, restore, save_checkpoint
from .data import PersistentIterator, SearchData, load_search_data, make_loader
from .data.batched import BatchedLoader, DeviceImages
from .distill import SearchObjective, TeacherCache
from .errors import UserError
from .genotypes import count_op, genotype_to_dict, save_genotype
from .hessian import dominant_eigen, fixed_batch
from .memory import check_fits, clearly_fits, training_step_bytes
from .runtime import (
    Progress,
    get_rng_state,
    interrupted,
    pick_device,
    seed_everything,
    set_rng_state,
)
from .schedules import cosine_lr
from .search_config import METHODS, PARAMS_SECTIONS, SearchConfig
from .search_step import FirstOrderStep, GraphedStep, StepSettings, configure_backends
from .spaces import get_space
from .tracking import log_epoch, replay_live

log = logging.getLogger("sd_darts.search")


@dataclass
class SearchResult:
    out: Path
    genotype: Any
    summary: dict


HESSIAN_BATCH_SEED = 20230210  # the same validation batch for every epoch, seed and method (Fig. 2)
VALID_SEED_OFFSET = 7919  # the alpha half's order differs from the weight half's


@dataclass
class SearchRun:
    """Everything a search holds between epochs (built by :func:`prepare`)."""

    cfg: SearchConfig
    out: Path
    device: torch.device
    data: SearchData
    model: torch.nn.Module
    w_optimizer: torch.optim.Optimizer | None  # reference step
    scheduler: Any
    architect: Architect | None
    objective: SearchObjective | None
    cache: TeacherCache | None
    step: FirstOrderStep | None = None  # --fast-step: optimisers inside, batched device data
    runner: Any = None  # the step, or its CUDA-graph replay
    loaders: tuple[BatchedLoader, BatchedLoader] | None = None
    start_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    hessian_batch: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.pt"


CHECKPOINT_SCHEMA = {
    "epoch": int,
    "model": dict,
    "w_optimizer": dict,
    "a_optimizer": dict,
    "scheduler": dict,
    "rng": dict,
    "history": list,
}
#: With --fast-step the optimisers' state lives in the step (``FirstOrderStep.state_dict``).
FAST_CHECKPOINT_SCHEMA = {"epoch": int, "model": dict, "step": dict, "rng": dict, "history": list}


def search_data(cfg: SearchConfig) -> SearchData:
    """The search split of ``cfg``'s dataset (:func:`~sd_darts.data.load_search_data`)."""
    return load_search_data(
        cfg.dataset,
        cfg.data_root,
        portion=cfg.train_portion,
        image_size=cfg.image_size,
        download=cfg.download,
        limit=cfg.limit_samples,
    )


def check_memory(
    cfg: SearchConfig, space, data: SearchData, device: torch.device, build_options: dict, copies: int = 1
) -> None:
    """Refuse the search (``copies`` of it: stacked seeds) if its estimated memory exceeds what is free."""
    cells = cfg.layers * 3 if cfg.space == "nb201" else cfg.layers
    factor = 2 if cfg.unrolled else 1
    if clearly_fits(copies * factor * cfg.batch_size * cfg.init_channels * cells * data.image_size**2, device):
        return  # the exact estimate (a meta-device forward, seconds) is only needed near the limit
    shape = (cfg.batch_size, data.channels, data.image_size, data.image_size)
    need = training_step_bytes(
        lambda: space.build(cfg.init_channels, cfg.layers, data.num_classes, **build_options), shape, optimizer_slots=2
    )
    if cfg.unrolled:
        need *= 2  # the unrolled weights and their graph live beside the supernet's
    if cfg.method == "sd-darts":
        need += TeacherCache.bytes_needed(cfg.window, data.num_samples, data.num_classes)
    what, hint = "this search", "lower --batch-size, --init-channels, --layers or --image-size"
    if copies > 1:
        what, hint = f"these {copies} stacked seeds", f"{hint}, or stack fewer --seeds"
    check_fits(copies * need, device, what, hint)


def _reference_run(cfg: SearchConfig, out: Path, device: torch.device, data: SearchData, model, cache) -> SearchRun:
    """The reference step: SGD + cosine schedule for the weights, the DARTS architect for the alphas."""
    w_optimizer = torch.optim.SGD(
        model.weights(),
        lr=cfg.learning_rate,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov and cfg.momentum > 0,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(w_optimizer, T_max=cfg.epochs, eta_min=cfg.learning_rate_min)
    objective = SearchObjective(model, cfg, cache)
    architect = Architect.from_config(model, objective, cfg)
    return SearchRun(cfg, out, device, data, model, w_optimizer, scheduler, architect, objective, cache)


def fast_loaders(train: DeviceImages, valid: DeviceImages, batch_size: int, seed: int):
    """The fast path's (weight half, alpha half) loaders of one seed; the ragged last batch is
    kept, as DARTS's loaders do, so that an epoch visits every sample."""
    return (
        BatchedLoader(train, batch_size, seed=seed, drop_last=False),
        BatchedLoader(valid, batch_size, seed=seed + VALID_SEED_OFFSET, drop_last=False),
    )


def _fast_run(cfg: SearchConfig, out: Path, device: torch.device, data: SearchData, model, cache) -> SearchRun:
    """The capturable first-order step (:mod:`sd_darts.search_step`) on batches of images
    resident on the device (:mod:`sd_darts.data.batched`), in the DataLoader path's order."""
    configure_backends(device)
    compile_mode = None if cfg.compile == "none" else cfg.compile
    step = FirstOrderStep(model, StepSettings.from_config(cfg), cache, amp=cfg.amp == "bf16", compile=compile_mode)
    train, valid = (DeviceImages.from_dataset(d, device) for d in (data.train, data.valid))
    loaders = fast_loaders(train, valid, cfg.batch_size, cfg.seed)
    runner = GraphedStep(step) if cfg.cuda_graph else step
    return SearchRun(
        cfg, out, device, data, model, None, None, None, None, cache, step=step, runner=runner, loaders=loaders
    )


def prepare(cfg: SearchConfig) -> SearchRun:
    """Check every input (data, memory, checkpoint) and build the search; writes nothing."""
    out = files.check_writable_dir(cfg.out)
    device = pick_device(cfg.device)
    space = get_space(cfg.space)
    data = search_data(cfg)
    build_options = {"primitives": cfg.primitives.split(",")} if cfg.primitives else {}
    check_memory(cfg, space, data, device, build_options)
    if cfg.cuda_graph and device.type != "cuda":
        raise UserError(f"--cuda-graph needs a CUDA device, this run is on {device}; drop --cuda-graph")
    base_schema = FAST_CHECKPOINT_SCHEMA if cfg.fast_step else CHECKPOINT_SCHEMA
    schema = dict(base_schema, **({"teacher_cache": dict} if cfg.method == "sd-darts" else {}))
    ckpt = load_checkpoint_if_any(out / "checkpoint.pt", cfg, "search", schema)

    seed_everything(cfg.seed)
    model = space.build(cfg.init_channels, cfg.layers, data.num_classes, **build_options, impl=cfg.impl).to(device)
    cache = TeacherCache(data.num_samples, data.num_classes, cfg.window, device) if cfg.method == "sd-darts" else None
    if cfg.fast_step:
        run = _fast_run(cfg, out, device, data, model, cache)
    else:
        run = _reference_run(cfg, out, device, data, model, cache)
    if ckpt is not None:
        path = run.ckpt_path
        run.start_epoch = check_epoch(path, ckpt["epoch"], cfg.epochs - 1) + 1
        restore(path, "model", lambda: model.load_state_dict(ckpt["model"]))
        if run.step is not None:
            restore(path, "step's optimiser state", lambda: run.step.load_state_dict(ckpt["step"]))
        else:
            restore(path, "weight optimizer", lambda: run.w_optimizer.load_state_dict(ckpt["w_optimizer"]))
            restore(path, "alpha optimizer", lambda: run.architect.load_state_dict(ckpt["a_optimizer"]))
            restore(path, "scheduler", lambda: run.scheduler.load_state_dict(ckpt["scheduler"]))
        if cache is not None:
            cache.load_state_dict(ckpt["teacher_cache"])
        restore(path, "RNG state", lambda: set_rng_state(ckpt["rng"]))
        run.history = restore(path, "history", lambda: [dict(h) for h in ckpt["history"]])
        check_epoch(path, len(run.history), run.start_epoch, "history length")
    if cfg.hessian_every:
        inputs, targets = fixed_batch(data.valid, cfg.hessian_batch_size, seed=HESSIAN_BATCH_SEED)
        run.hessian_batch = (inputs.to(device), targets.to(device))
    return run


def _loaders(run: SearchRun, epoch: int):
    cfg, pin = run.cfg, run.device.type == "cuda"
    train = make_loader(
        run.data.train,
        cfg.batch_size,
        shuffle=True,
        seed=cfg.seed,
        epoch=epoch,
        num_workers=cfg.num_workers,
        pin_memory=pin,
    )
    valid = PersistentIterator(
        lambda e, p: make_loader(
            run.data.valid,
            cfg.batch_size,
            shuffle=True,
            seed=cfg.seed + VALID_SEED_OFFSET,
            epoch=e,
            pass_index=p,
            num_workers=cfg.num_workers,
            pin_memory=pin,
        )
    )
    valid.reset(epoch)
    return train, valid


def learning_rate(cfg: SearchConfig, epoch: int) -> float:
    """The weights' learning rate of (0-based) ``epoch``: cosine annealing to ``learning_rate_min``."""
    return cosine_lr(epoch, cfg.epochs, cfg.learning_rate, cfg.learning_rate_min)


def train_epoch_fast(run: SearchRun, epoch: int) -> dict[str, float]:
    """One epoch of the capturable first-order step; the same metrics as :func:`train_epoch`."""
    cfg, step = run.cfg, run.step
    lr = learning_rate(cfg, epoch)
    run.model.train()
    step.set_epoch(epoch, lr)
    step.reset_metrics()
    train, valid = run.loaders
    valid_stream = valid.stream(epoch)
    steps = len(train) if cfg.max_steps_per_epoch is None else min(len(train), cfg.max_steps_per_epoch)
    for b, batch in enumerate(Progress(f"search epoch {epoch + 1}/{cfg.epochs}", total=steps)(train.batches(epoch))):
        if b >= steps:
            break
        run.runner(*batch, *next(valid_stream))
    return step_metrics(step.read_metrics(), cfg.sd_lambda, lr)  # the one host synchronisation of the epoch


def step_metrics(sums: dict[str, float], sd_lambda: float, lr: float) -> dict[str, float]:
    """The epoch's metrics from the sums of :meth:`FirstOrderStep.read_metrics` (one seed's)."""
    nt, nv = max(sums["train_count"], 1), max(sums["valid_count"], 1)
    return {
        "train/loss": sums["train_loss"] / nt,
        "train/objective": (sums["train_loss"] + sd_lambda * sums["kd_loss"]) / nt,
        "train/acc": 100.0 * sums["train_correct"] / nt,
        "valid/loss": sums["valid_ce"] / nv,
        "valid/objective": sums["valid_loss"] / nv,
        "valid/acc": 100.0 * sums["valid_correct"] / nv,
        "kd_loss": sums["kd_loss"] / nt,
        "lr": lr,
    }


def reference_step(
    architect: Architect,
    objective: SearchObjective,
    w_optimizer: torch.optim.Optimizer,
    train_batch,
    valid_batch,
    lr: float,
    grad_clip: float,
    track_kd: bool = False,
):
    """One step of the reference search (DARTS's loop body): the architect's alpha step on the
    alpha-half batch, then the weight step on the weight-half batch (recording the teacher,
    gradient-norm clipping when ``grad_clip`` > 0).  Returns ``(loss, logits, v_loss, v_logits)``."""
    v_loss, v_logits = architect.step(train_batch, valid_batch, lr, w_optimizer)
    w_optimizer.zero_grad(set_to_none=True)
    loss, logits = objective(*train_batch, record=True, track_kd=track_kd)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(architect.model.weights(), grad_clip)
    w_optimizer.step()
    return loss, logits, v_loss, v_logits


def train_epoch(run: SearchRun, epoch: int) -> dict[str, float]:
    """One epoch: an alpha step then a weight step per batch; per-epoch means (one host sync)."""
    if run.step is not None:
        return train_epoch_fast(run, epoch)
    cfg, model, device = run.cfg, run.model, run.device
    run.objective.set_epoch(epoch)
    lr = run.scheduler.get_last_lr()[0]
    model.train()
    train_loader, valid_iter = _loaders(run, epoch)
    names = ("train_ce", "train_objective", "train_correct", "valid_ce", "valid_objective", "valid_correct")
    sums = torch.zeros(len(names), device=device, dtype=torch.float64)
    run.objective.kd_sum = torch.zeros((), device=device)
    n_train = n_valid = 0
    steps = len(train_loader) if cfg.max_steps_per_epoch is None else min(len(train_loader), cfg.max_steps_per_epoch)
    for step, (x, y, idx) in enumerate(Progress(f"search epoch {epoch + 1}/{cfg.epochs}", total=steps)(train_loader)):
        if step >= steps:
            break
        x, y, idx = (t.to(device, non_blocking=True) for t in (x, y, idx))
        xv, yv, iv = (t.to(device, non_blocking=True) for t in next(valid_iter))

        loss, logits, v_loss, v_logits = reference_step(
            run.architect, run.objective, run.w_optimizer, (x, y, idx), (xv, yv, iv), lr, cfg.grad_clip, track_kd=True
        )

        logits, v_logits = logits.detach(), v_logits.detach()
        nt, nv = x.shape[0], xv.shape[0]
        sums += torch.stack(
            [
                F.cross_entropy(logits, y) * nt,
                loss.detach() * nt,
                (logits.argmax(1) == y).sum(),
                F.cross_entropy(v_logits, yv) * nv,
                v_loss * nv,
                (v_logits.argmax(1) == yv).sum(),
            ]
        ).double()
        n_train, n_valid = n_train + nt, n_valid + nv
    run.scheduler.step()
    values = dict(zip(names, sums.tolist()))  # the one host synchronisation of the epoch
    nt, nv = max(n_train, 1), max(n_valid, 1)
    return {
        "train/loss": values["train_ce"] / nt,
        "train/objective": values["train_objective"] / nt,
        "train/acc": 100.0 * values["train_correct"] / nt,
        "valid/loss": values["valid_ce"] / nv,
        "valid/objective": values["valid_objective"] / nv,
        "valid/acc": 100.0 * values["valid_correct"] / nv,
        "kd_loss": float(run.objective.kd_sum) / nt,
        "lr": lr,
    }


def end_of_epoch(run: SearchRun, epoch: int, metrics: dict[str, float], live, started: float) -> None:
    """Genotype, teacher coverage, Hessian (Fig. 2), per-epoch files and the checkpoint."""
    cfg, model = run.cfg, run.model
    genotype = model.genotype()
    metrics["teacher_coverage"] = float(run.cache.coverage(epoch + 1)) if run.cache is not None else 0.0
    metrics["num_skip_connect"] = count_op(genotype, "skip_connect")
    if run.hessian_batch is not None and ((epoch + 1) % cfg.hessian_every == 0 or epoch + 1 == cfg.epochs):
        eig = dominant_eigen(model, *run.hessian_batch, iters=cfg.hessian_iters, tol=cfg.hessian_tol)
        metrics.update(
            {"hessian/eigenvalue": eig.value, "hessian/residual": eig.residual, "hessian/iterations": eig.iterations}
        )
        if not eig.converged:
            log.warning(
                "epoch %d: Hessian eigenvalue %.4g not converged after %d products (residual %.2g); raise --hessian-iters",
                epoch + 1,
                eig.value,
                eig.iterations,
                eig.residual,
            )
    metrics["epoch_seconds"] = time.perf_counter() - started

    save_genotype(run.out / "genotypes" / f"epoch_{epoch:03d}.json", genotype)
    alpha_ids = {id(a) for a in model.arch_parameters()}
    alphas = {name: p.detach().cpu().clone() for name, p in model.named_parameters() if id(p) in alpha_ids}
    files.torch_save(run.out / "alphas" / f"epoch_{epoch:03d}.pt", alphas)
    run.history.append({"epoch": epoch, **metrics})
    log_epoch(live, epoch, run.history[-1])
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
    state = {"epoch": epoch, "model": model.state_dict(), "rng": get_rng_state(), "history": run.history}
    if run.step is not None:
        state["step"] = run.step.state_dict()
    else:
        state.update(
            w_optimizer=run.w_optimizer.state_dict(),
            a_optimizer=run.architect.state_dict(),
            scheduler=run.scheduler.state_dict(),
        )
    if run.cache is not None:
        state["teacher_cache"] = run.cache.state_dict()
    save_checkpoint(run.ckpt_path, cfg, "search", state)


@torch.no_grad()
def evaluate_supernet(model, dataset, batch_size: int, device: torch.device) -> tuple[float, float]:
    """Cross-entropy and accuracy (%) of the supernet in eval mode on every sample of ``dataset``."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.float64)
    n = 0
    for x, y, _ in make_loader(dataset, batch_size, shuffle=False, seed=0, epoch=0):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum().double()
        n += y.shape[0]
    model.train(was_training)
    return float(loss) / max(n, 1), 100.0 * float(correct) / max(n, 1)


SUMMARY_NOTE = (
    "supernet_valid_*: the final supernet in eval mode on every image of the alpha half, without "
    "augmentation (the selection criterion); final/best_valid_acc: running accuracy of the alpha steps "
    "(train mode, augmented batches, before each update)"
)


def write_result(cfg: SearchConfig, out: Path, model, data: SearchData, history, device, **extra) -> SearchResult:
    """Measure the final supernet ``model`` on the whole alpha half (eval mode, no augmentation)
    and write ``genotype.json`` and ``summary.json`` (``extra`` keys last).  The measurement is
    what the pipeline selects by."""
    genotype = model.genotype()
    loss, acc = evaluate_supernet(model, data.valid_plain, cfg.batch_size, device)
    best = max(history, key=lambda h: h["valid/acc"])
    summary = {
        "method": cfg.method,
        "space": cfg.space,
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "device": str(device),
        "supernet_valid_acc": acc,
        "supernet_valid_loss": loss,
        "final_valid_acc": history[-1]["valid/acc"],
        "best_valid_acc": best["valid/acc"],
        "best_epoch": best["epoch"],
        "num_skip_connect": count_op(genotype, "skip_connect"),
        "genotype": genotype_to_dict(genotype),
        **extra,
    }
    save_genotype(out / "genotype.json", genotype)
    files.write_json(out / "summary.json", summary)
    return SearchResult(out=out, genotype=genotype, summary=summary)


def finish(run: SearchRun) -> SearchResult:
    """The run's final measurement, genotype and summary (:func:`write_result`)."""
    return write_result(run.cfg, run.out, run.model, run.data, run.history, run.device, note=SUMMARY_NOTE)


def run_search(cfg: SearchConfig) -> SearchResult:
    """Run (or resume) a search; everything is checked before anything is written."""
    lock = files.RunLock(cfg.out)
    if Path(cfg.out).is_dir():
        lock.acquire()  # before reading its checkpoint: another process may be writing it
    try:
        run = prepare(cfg)
        run.out.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        files.remove_stale_temporaries(run.out)
        files.write_yaml(run.out / "config.yaml", cfgmod.to_dict(cfg))
        if run.start_epoch:
            log.info("resuming %s from epoch %d of %d", run.out, run.start_epoch + 1, cfg.epochs)
        live = replay_live(run.out / "dvclive", run.history)
        try:
            for epoch in range(run.start_epoch, cfg.epochs):
                started = time.perf_counter()
                metrics = train_epoch(run, epoch)
                end_of_epoch(run, epoch, metrics, live, started)
            live.end()
            return finish(run)
        except KeyboardInterrupt as exc:
            live.end()
            done = len(run.history)
            saved = f"{run.ckpt_path} holds epoch {done}/{cfg.epochs}" if done else "no epoch was completed"
            raise interrupted(exc, f"{saved}; rerun the same command to resume") from None
    finally:
        lock.release()


__all__ = [
    "SearchConfig",
    "SearchResult",
    "SearchObjective",
    "SearchRun",
    "prepare",
    "reference_step",
    "train_epoch",
    "end_of_epoch",
    "evaluate_supernet",
    "finish",
    "run_search",
    "METHODS",
    "PARAMS_SECTIONS",
]
