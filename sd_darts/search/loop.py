"""The SD-DARTS search loop (paper §3.3–3.4, Algorithms 1–2, Table 1), one loop for one run
folder or S stacked seeds (``--seeds``), every space, and every step of :mod:`sd_darts.search.step`.

Per epoch, for every batch of the weight half: one alpha step on the next batch of the alpha half,
then one weight step; with ``--method sd-darts`` both objectives get ``λ·KL(student ‖ voting
teacher)`` after ξ warm-up epochs (Eq. 2).  Epochs are 0-indexed (index ``e`` is paper epoch e+1).
:class:`Search` checks and builds everything, writing nothing; :func:`run_search` /
:func:`run_search_seeds` lock the folders, run the epochs (each ends with a checkpoint, all
seeds' committed together) and write each folder's genotype and summary.  Outputs: README.md.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from ..data import PersistentIterator, SearchData, load_search_data, make_loader
from ..data.batched import BatchedLoader, DeviceImages
from ..errors import UserError
from ..genotypes import count_op, save_genotype
from ..spaces import get_space
from ..utils import config as cfgmod
from ..utils import files
from ..utils.checkpoint import CheckpointGroup, check_epoch, restore
from ..utils.memory import check_fits, clearly_fits, training_step_bytes
from ..utils.runtime import Progress, get_rng_state, interrupted, pick_device, seed_everything, set_rng_state
from ..utils.schedules import cosine_lr
from ..utils.tracking import log_epoch, replay_live
from .config import SearchConfig
from .distill import TeacherCache
from .fast import FirstOrderStep, GraphedStep, configure_backends
from .hessian import dominant_eigen, fixed_batch
from .runs import SUMMARY_NOTE, SearchResult, check_distinct_folders, seed_configs, write_result
from .stacked import build_stacked, stack_batches
from .step import ReferenceStep, StepSettings, epoch_metrics

log = logging.getLogger("sd_darts.search")

HESSIAN_BATCH_SEED = 20230210  # the same validation batch for every epoch, seed and method (Fig. 2)
VALID_SEED_OFFSET = 7919  # the alpha half's order differs from the weight half's


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


def learning_rate(cfg: SearchConfig, epoch: int) -> float:
    """The weights' learning rate of (0-based) ``epoch``: cosine annealing to ``learning_rate_min``."""
    return cosine_lr(epoch, cfg.epochs, cfg.learning_rate, cfg.learning_rate_min)


def build_step(cfg: SearchConfig, model: torch.nn.Module, cache=None):
    """The step of a SearchConfig: the reference step, or with ``fast_step`` the first-order
    step (``cuda_graph``: graphed, ``compile``, ``amp``)."""
    if not cfg.fast_step:
        return ReferenceStep(model, cfg, cache)
    device = model.arch_parameters()[0].device
    configure_backends(device)
    compile_mode = None if cfg.compile == "none" else cfg.compile
    step = FirstOrderStep(model, StepSettings.from_config(cfg), cache, amp=cfg.amp == "bf16", compile=compile_mode)
    return GraphedStep(step) if cfg.cuda_graph else step


class ReferenceLoaders:
    """DARTS's loaders: a shuffled DataLoader per epoch over each half, the alpha half's drawn
    batch by batch across passes; batches moved to the device as the step takes them."""

    def __init__(self, cfg: SearchConfig, data: SearchData, device: torch.device):
        self.cfg, self.data, self.device = cfg, data, device

    def loaders(self, epoch: int):
        cfg, pin = self.cfg, self.device.type == "cuda"
        common = dict(num_workers=cfg.num_workers, pin_memory=pin)
        train = make_loader(self.data.train, cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch, **common)
        valid = PersistentIterator(
            lambda e, p: make_loader(
                self.data.valid,
                cfg.batch_size,
                shuffle=True,
                seed=cfg.seed + VALID_SEED_OFFSET,
                epoch=e,
                pass_index=p,
                **common,
            )
        )
        valid.reset(epoch)
        return train, valid

    def epoch(self, epoch: int):
        """``(number of batches, iterator of (x, y, idx, xv, yv, iv))`` of ``epoch``."""
        train, valid = self.loaders(epoch)
        dev = self.device

        def batches():
            for batch in train:
                yield tuple(t.to(dev, non_blocking=True) for t in (*batch, *next(valid)))

        return len(train), batches()


class DeviceLoaders:
    """The fast path's loaders: images resident on the device, augmented by batch, in the
    reference loaders' order; the ragged last batch is kept, so an epoch visits every sample.
    One loader pair per seed; with several seeds the batches are stacked (S, N, ...)."""

    def __init__(self, data: SearchData, device: torch.device, batch_size: int, seeds: list[int]):
        train, valid = (DeviceImages.from_dataset(d, device) for d in (data.train, data.valid))
        self.pairs = [
            (
                BatchedLoader(train, batch_size, seed=s, drop_last=False),
                BatchedLoader(valid, batch_size, seed=s + VALID_SEED_OFFSET, drop_last=False),
            )
            for s in seeds
        ]

    def epoch(self, epoch: int):
        trains = [t.batches(epoch) for t, _ in self.pairs]
        streams = [v.stream(epoch) for _, v in self.pairs]

        def batches():
            for parts in zip(*trains):
                parts = [(*b, *next(s)) for b, s in zip(parts, streams)]
                yield parts[0] if len(parts) == 1 else stack_batches(parts)

        return len(self.pairs[0][0]), batches()


def _alpha_names(model: torch.nn.Module) -> list[str]:
    ids = {id(a) for a in model.arch_parameters()}
    return [name for name, p in model.named_parameters() if id(p) in ids]


class Search:
    """A search of one run folder or of S stacked seeds, checked and built (nothing written):
    data, supernet, teacher cache, step, loaders, and the state its checkpoints hold."""

    def __init__(self, cfg: SearchConfig):
        self.cfg = cfg
        self.cfgs = seed_configs(cfg)
        self.outs = [files.check_writable_dir(c.out) for c in self.cfgs]
        self.device = device = pick_device(cfg.device)
        space = get_space(cfg.space)
        self.data = data = search_data(cfg)
        S = len(self.cfgs)
        build_options = {"primitives": cfg.primitives.split(",")} if cfg.primitives else {}
        check_memory(cfg, space, data, device, build_options, copies=S)
        if cfg.cuda_graph and device.type != "cuda":
            raise UserError(f"--cuda-graph needs a CUDA device, this run is on {device}; drop --cuda-graph")
        if cfg.seeds:
            model = build_stacked(cfg.seeds, cfg.init_channels, cfg.layers, data.num_classes, **build_options)
        else:
            seed_everything(cfg.seed)
            model = space.build(cfg.init_channels, cfg.layers, data.num_classes, **build_options, impl=cfg.impl)
        self.model = model.to(device)
        self.cache = None
        if cfg.method == "sd-darts":
            dtype = self.model.arch_parameters()[0].dtype  # the KD term in the model's precision
            self.cache = TeacherCache(data.num_samples, data.num_classes, cfg.window, device, num_seeds=S, dtype=dtype)
        self.step = build_step(cfg, self.model, self.cache)
        seeds = [c.seed for c in self.cfgs]
        self.loaders = (
            DeviceLoaders(data, device, cfg.batch_size, seeds) if cfg.fast_step else ReferenceLoaders(cfg, data, device)
        )
        with torch.random.fork_rng(devices=[]):  # the reference form's names; the run's RNG untouched
            self.alpha_names = _alpha_names(self.model.reference_model() if cfg.seeds else self.model)
        self.histories: list[list[dict]] = [[] for _ in self.cfgs]
        self.group = CheckpointGroup([o / "checkpoint.pt" for o in self.outs], "search")
        self.start_epoch = self._resume()
        self.hessian_batch = None
        if cfg.hessian_every:
            inputs, targets = fixed_batch(data.valid, cfg.hessian_batch_size, seed=HESSIAN_BATCH_SEED)
            self.hessian_batch = (inputs.to(device), targets.to(device))

    def _resume(self) -> int:
        """Load the folders' checkpoints, if any (all seeds from one epoch); the next epoch."""
        required = dict(self.step.checkpoint_keys, epoch=int, rng=dict, history=list)
        if self.cache is not None:
            required["teacher_cache"] = dict
        ckpts = self.group.load(self.cfgs, required)
        if all(c is None for c in ckpts):
            return 0
        fix = "stacked seeds resume together from one epoch: delete their checkpoint.pt to start afresh, or use a new --out"
        if any(c is None for c in ckpts):
            missing = ", ".join(str(c.seed) for c, ckpt in zip(self.cfgs, ckpts) if ckpt is None)
            raise UserError(f"some seeds' folders have a checkpoint and some (seeds {missing}) do not; {fix}")
        if len({int(c["epoch"]) for c in ckpts}) != 1:
            held = ", ".join(f"seed {c.seed}: {int(ckpt['epoch']) + 1}" for c, ckpt in zip(self.cfgs, ckpts))
            raise UserError(f"the seeds' checkpoints hold different epochs ({held}); {fix}")
        for i, (out, ckpt) in enumerate(zip(self.outs, ckpts)):
            path = out / "checkpoint.pt"
            start = check_epoch(path, ckpt["epoch"], self.cfg.epochs - 1) + 1
            restore(path, "state", lambda ckpt=ckpt, i=i: self.step.load_checkpoint_state(i, ckpt))
            self.histories[i] = restore(path, "history", lambda ckpt=ckpt: [dict(h) for h in ckpt["history"]])
            check_epoch(path, len(self.histories[i]), start, "history length")
        restore(self.outs[0] / "checkpoint.pt", "RNG state", lambda: set_rng_state(ckpts[0]["rng"]))
        return start

    def seed_models(self) -> list[torch.nn.Module]:
        """Each seed's supernet in the reference form (the model itself for one run folder)."""
        if not self.cfg.seeds:
            return [self.model]
        models = []
        for i in range(len(self.cfgs)):
            ref = self.model.reference_model().to(self.device)
            ref.load_state_dict(self.model.reference_state_dict(i))
            models.append(ref)
        return models

    def train_epoch(self, epoch: int) -> list[dict[str, float]]:
        """One epoch of every seed: per batch an alpha step then a weight step; per-seed means."""
        cfg, step = self.cfg, self.step
        lr = learning_rate(cfg, epoch)
        self.model.train()
        step.set_epoch(epoch, lr)
        step.reset_metrics()
        total, batches = self.loaders.epoch(epoch)
        steps = total if cfg.max_steps_per_epoch is None else min(total, cfg.max_steps_per_epoch)
        for b, batch in enumerate(Progress(f"search epoch {epoch + 1}/{cfg.epochs}", total=steps)(batches)):
            if b >= steps:
                break
            step(*batch)
        return [epoch_metrics(sums, cfg.sd_lambda, lr) for sums in step.read_metrics()]  # one host sync

    def end_epoch(self, epoch: int, rows: list[dict[str, float]], lives: list, started: float) -> None:
        """Per seed: genotype, teacher coverage, Hessian (Fig. 2), per-epoch files; then every
        seed's checkpoint, committed all or none."""
        cfg = self.cfg
        genotypes = self.model.genotype()
        genotypes = genotypes if isinstance(genotypes, list) else [genotypes]
        for i, row in enumerate(rows):
            cache = None if self.cache is None else self.cache.seed(i)
            row["teacher_coverage"] = float(cache.coverage(epoch + 1)) if cache is not None else 0.0
            row["num_skip_connect"] = count_op(genotypes[i], "skip_connect")
            if self.hessian_batch is not None and ((epoch + 1) % cfg.hessian_every == 0 or epoch + 1 == cfg.epochs):
                row.update(self._hessian(epoch))
            row["epoch_seconds"] = time.perf_counter() - started
        rng, states = get_rng_state(), []  # after the Hessian's draws, as a resumed run continues
        for i, (out, row) in enumerate(zip(self.outs, rows)):
            save_genotype(out / "genotypes" / f"epoch_{epoch:03d}.json", genotypes[i])
            state = self.step.checkpoint_state(i)
            alphas = {k: state["model"][k].detach().cpu().clone() for k in self.alpha_names}
            files.torch_save(out / "alphas" / f"epoch_{epoch:03d}.pt", alphas)
            self.histories[i].append({"epoch": epoch, **row})
            log_epoch(lives[i], epoch, self.histories[i][-1])
            states.append({"epoch": epoch, "rng": rng, "history": self.histories[i], **state})
        self.group.save(self.cfgs, states)
        for c, row in zip(self.cfgs, rows):
            log.info(
                "epoch %d/%d%s: train acc %.2f loss %.4f | valid acc %.2f loss %.4f | kd %.4f | skip %d | %.1fs",
                epoch + 1,
                cfg.epochs,
                f" seed {c.seed}" if cfg.seeds else "",
                row["train/acc"],
                row["train/loss"],
                row["valid/acc"],
                row["valid/loss"],
                row["kd_loss"],
                row["num_skip_connect"],
                row["epoch_seconds"],
            )

    def _hessian(self, epoch: int) -> dict[str, float]:
        eig = dominant_eigen(self.model, *self.hessian_batch, iters=self.cfg.hessian_iters, tol=self.cfg.hessian_tol)
        if not eig.converged:
            log.warning(
                "epoch %d: Hessian eigenvalue %.4g not converged after %d products (residual %.2g); raise --hessian-iters",
                epoch + 1,
                eig.value,
                eig.iterations,
                eig.residual,
            )
        return {"hessian/eigenvalue": eig.value, "hessian/residual": eig.residual, "hessian/iterations": eig.iterations}

    def saved(self) -> str:
        """What the checkpoints hold now, for the message of an interruption."""
        total, pending = self.cfg.epochs, self.group.pending()
        done = [0 if e is None else e + 1 for e in self.group.committed()]
        if not self.cfg.seeds:
            held = (
                f"{self.outs[0] / 'checkpoint.pt'} holds epoch {done[0]}/{total}"
                if done[0]
                else "no epoch was completed"
            )
        elif len(set(done)) > 1:
            held = "the seeds' checkpoint.pt hold epochs " + ", ".join(
                f"{d}/{total} (seed {c.seed})" for c, d in zip(self.cfgs, done)
            )
        elif done[0]:
            held = f"each seed's checkpoint.pt holds epoch {done[0]}/{total}"
        else:
            held = "no seed's checkpoint.pt holds an epoch yet" if pending is not None else "no epoch was completed"
        if pending is not None and self.cfg.seeds:
            held += f"; epoch {pending + 1}/{total} is written for every seed and the rerun commits it"
        return held

    def finish(self) -> list[SearchResult]:
        """Per folder: the final supernet measured in eval mode on the alpha half, genotype.json, summary.json."""
        extra = {"stacked_with_seeds": list(self.cfg.seeds)} if self.cfg.seeds else {}
        return [
            write_result(c, out, model, self.data, history, self.device, note=SUMMARY_NOTE, **extra)
            for c, out, model, history in zip(self.cfgs, self.outs, self.seed_models(), self.histories)
        ]


def _run(cfg: SearchConfig) -> list[SearchResult]:
    """Run (or resume) the search of ``cfg``, one result per run folder; everything is checked
    before anything is written, and each folder is locked before its checkpoint is read."""
    cfgs = seed_configs(cfg)
    check_distinct_folders(cfgs)
    locks = {}
    try:
        for c in cfgs:
            if Path(c.out).is_dir():
                locks[c.out] = files.RunLock(c.out).acquire()  # another process may be writing it
        search = Search(cfg)
        for c, out in zip(search.cfgs, search.outs):
            out.mkdir(parents=True, exist_ok=True)
            if c.out not in locks:
                locks[c.out] = files.RunLock(c.out).acquire()
        search.group.settle()  # an interrupted commit: finished or discarded, as the checkpoints were read
        for c, out in zip(search.cfgs, search.outs):
            files.remove_stale_temporaries(out)
            files.write_yaml(out / "config.yaml", cfgmod.to_dict(c))
        if search.start_epoch:
            log.info("resuming %s from epoch %d of %d", cfg.out, search.start_epoch + 1, cfg.epochs)
        lives = [replay_live(out / "dvclive", h) for out, h in zip(search.outs, search.histories)]
        try:
            for epoch in range(search.start_epoch, cfg.epochs):
                started = time.perf_counter()
                search.end_epoch(epoch, search.train_epoch(epoch), lives, started)
            for live in lives:
                live.end()
            return search.finish()
        except KeyboardInterrupt as exc:
            for live in lives:
                live.end()
            raise interrupted(exc, f"{search.saved()}; rerun the same command to resume") from None
    finally:
        for lock in locks.values():
            lock.release()


def run_search(cfg: SearchConfig) -> SearchResult:
    """Run (or resume) one search in ``cfg.out``."""
    if cfg.seeds:
        raise ValueError("run_search runs one seed; use run_search_seeds for --seeds")
    return _run(cfg)[0]


def run_search_seeds(cfg: SearchConfig) -> list[SearchResult]:
    """Run (or resume) the searches of ``cfg.seeds`` stacked in one process; one result per seed."""
    return _run(cfg)


__all__ = ["Search", "build_step", "run_search", "run_search_seeds"]
