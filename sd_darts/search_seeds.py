"""Several search seeds in one process: ``sd-darts search --seeds 0,1,2,3 --out 'runs/s{seed}'``.

The S seeds are trained as one stacked fused supernet (:mod:`sd_darts.stacked`) by the
first-order step (:mod:`sd_darts.search_step`) on device-resident batches, each seed with its own
data order, augmentation, alphas, optimiser state, teacher cache and gradient clipping, so seed
``s`` follows its own ``--fast-step --impl fused`` trajectory up to float rounding.  The result
is S ordinary run folders, one per seed (``--out`` with ``{seed}``), each with its own
``config.yaml`` (its seed), per-epoch genotypes, alphas and DVCLive metrics, a checkpoint after
every epoch (the single-seed reference format of :func:`sd_darts.stacked.seed_checkpoint`; the S
checkpoints of an epoch are committed all or none, :class:`sd_darts.checkpoint.CheckpointGroup`),
``genotype.json`` and ``summary.json``.  Rerunning the same command resumes all seeds together.
DARTS space, first order, without the Fig. 2 Hessian (run single seeds for that).
"""

from __future__ import annotations

import dataclasses
import logging
import string
import time
from pathlib import Path

from . import config as cfgmod
from . import files
from .checkpoint import CheckpointGroup, check_epoch, restore
from .config import SettingError
from .data.batched import DeviceImages
from .distill import TeacherCache
from .errors import UserError
from .genotypes import count_op, save_genotype
from .runtime import get_rng_state, interrupted, pick_device, set_rng_state
from .search import (
    SearchConfig,
    SearchResult,
    check_memory,
    fast_loaders,
    learning_rate,
    search_data,
    step_metrics,
    write_result,
)
from .search_step import FirstOrderStep, GraphedStep, StepSettings, configure_backends
from .spaces import get_space
from .stacked import build_stacked, load_seed_checkpoint, seed_checkpoint, stack_batches
from .tracking import log_epoch, replay_live

log = logging.getLogger("sd_darts.search")

#: Each seed's checkpoint: the single-seed reference format of :func:`~sd_darts.stacked.seed_checkpoint`.
CHECKPOINT_SCHEMA = {
    "epoch": int,
    "model": dict,
    "w_optimizer": dict,
    "a_optimizer": dict,
    "rng": dict,
    "history": list,
}


def template_problem(out: str) -> str | None:
    """What is wrong with ``out`` as a folder template of ``--seeds`` (None: nothing)."""
    fix = "use only {seed}, bare (write {{ and }} for a literal brace), e.g. runs/search/sd-darts-s{seed}"
    try:
        fields = [(name, spec, conv) for _text, name, spec, conv in string.Formatter().parse(out) if name is not None]
    except ValueError as exc:
        return f"{files.bounded(out, 200)} is not a valid template ({exc}); {fix}"
    for name, spec, conv in fields:
        if name != "seed" or spec or conv is not None:
            text = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            return f"{files.bounded(out, 200)} has the field {files.bounded(text)}; {fix}"
    if not fields:
        return f"{files.bounded(out, 200)} must contain {{seed}} with --seeds, e.g. runs/search/sd-darts-s{{seed}}"
    return None


def seed_configs(cfg: SearchConfig) -> list[SearchConfig]:
    """The settings of each seed's run: ``cfg`` with that seed, one seed, its own output folder."""
    problems = [
        (cfg.space == "darts", "space", "--seeds runs the DARTS space (the NAS-Bench-201 supernet has one seed only)"),
        (
            cfg.fast_step and cfg.impl == "fused",
            "seeds",
            "run stacked on the fused supernet's fast step: add --fast-step --impl fused",
        ),
        (
            cfg.hessian_every == 0,
            "hessian_every",
            "is not computed for stacked seeds; run the seeds one by one for Fig. 2",
        ),
    ]
    problem = template_problem(cfg.out)
    problems.insert(1, (problem is None, "out", problem or ""))
    for ok, name, message in problems:
        if not ok:
            raise UserError(str(SettingError(name, message)))
    return [dataclasses.replace(cfg, seed=s, seeds=None, out=cfg.out.format(seed=s)) for s in cfg.seeds]


def check_distinct_folders(cfgs: list[SearchConfig]) -> None:
    """Refuse two seeds whose folders are one (by ``..`` or a symbolic link), before anything is touched."""
    seen: dict[Path, SearchConfig] = {}
    for c in cfgs:
        try:
            real = Path(c.out).resolve()
        except (OSError, RuntimeError) as exc:  # a symbolic link loop
            raise UserError(f"--out {c.out} cannot be resolved ({exc}); choose another --out") from None
        if real in seen:
            first = seen[real]
            raise UserError(
                f"--out gives seeds {first.seed} and {c.seed} one folder: {first.out} and {c.out} are both {real} "
                "(through '..' or a symbolic link); put {seed} in the folder's own name, with no link in between"
            )
        seen[real] = c


class SeededRuns:
    """S runs trained together: settings, folders and histories per seed, one step."""

    def __init__(self, cfg: SearchConfig):
        self.cfg = cfg
        self.cfgs = seed_configs(cfg)
        self.outs = [files.check_writable_dir(c.out) for c in self.cfgs]
        self.device = pick_device(cfg.device)
        self.data = search_data(cfg)
        primitives = cfg.primitives.split(",") if cfg.primitives else None
        build_options = {"primitives": primitives} if primitives else {}
        check_memory(cfg, get_space(cfg.space), self.data, self.device, build_options, copies=len(self.cfgs))
        if cfg.cuda_graph and self.device.type != "cuda":
            raise UserError(f"--cuda-graph needs a CUDA device, this run is on {self.device}; drop --cuda-graph")
        schema = dict(CHECKPOINT_SCHEMA, **({"teacher_cache": dict} if cfg.method == "sd-darts" else {}))
        self.group = CheckpointGroup([o / "checkpoint.pt" for o in self.outs], "search")
        self.ckpts = self.group.load(self.cfgs, schema)
        fix = "stacked seeds resume together from one epoch: delete their checkpoint.pt to start afresh, or use a new --out"
        if any(c is None for c in self.ckpts) and any(c is not None for c in self.ckpts):
            missing = ", ".join(str(c.seed) for c, ckpt in zip(self.cfgs, self.ckpts) if ckpt is None)
            raise UserError(f"some seeds' folders have a checkpoint and some (seeds {missing}) do not; {fix}")
        S, data = len(self.cfgs), self.data
        self.model = build_stacked(cfg.seeds, cfg.init_channels, cfg.layers, data.num_classes, primitives).to(
            self.device
        )
        cache = None
        if cfg.method == "sd-darts":
            cache = TeacherCache(data.num_samples, data.num_classes, cfg.window, self.device, num_seeds=S)
        configure_backends(self.device)
        compile_mode = None if cfg.compile == "none" else cfg.compile
        self.step = FirstOrderStep(
            self.model, StepSettings.from_config(cfg), cache, amp=cfg.amp == "bf16", compile=compile_mode
        )
        self.runner = GraphedStep(self.step) if cfg.cuda_graph else self.step
        train, valid = (
            DeviceImages.from_dataset(data.train, self.device),
            DeviceImages.from_dataset(data.valid, self.device),
        )
        self.train, self.valid = map(list, zip(*(fast_loaders(train, valid, cfg.batch_size, s) for s in cfg.seeds)))
        self.histories: list[list[dict]] = [[] for _ in self.cfgs]
        self.start_epoch = 0
        if self.ckpts[0] is not None:
            epochs = {int(c["epoch"]) for c in self.ckpts}
            if len(epochs) != 1:
                held = ", ".join(f"seed {c.seed}: {int(ckpt['epoch']) + 1}" for c, ckpt in zip(self.cfgs, self.ckpts))
                raise UserError(f"the seeds' checkpoints hold different epochs ({held}); {fix}")
            for i, (out, ckpt) in enumerate(zip(self.outs, self.ckpts)):
                path = out / "checkpoint.pt"
                self.start_epoch = check_epoch(path, ckpt["epoch"], cfg.epochs - 1) + 1
                restore(path, "state", lambda ckpt=ckpt, i=i: load_seed_checkpoint(self.step, i, ckpt))
                self.histories[i] = restore(path, "history", lambda ckpt=ckpt: [dict(h) for h in ckpt["history"]])
                check_epoch(path, len(self.histories[i]), self.start_epoch, "history length")
            restore(self.outs[0] / "checkpoint.pt", "RNG state", lambda: set_rng_state(self.ckpts[0]["rng"]))

    def epoch(self, epoch: int) -> list[dict[str, float]]:
        """One epoch of all seeds; per-seed means (one host synchronisation)."""
        cfg, step = self.cfg, self.step
        lr = learning_rate(cfg, epoch)
        self.model.train()
        step.set_epoch(epoch, lr)
        step.reset_metrics()
        streams = [v.stream(epoch) for v in self.valid]
        steps = (
            len(self.train[0]) if cfg.max_steps_per_epoch is None else min(len(self.train[0]), cfg.max_steps_per_epoch)
        )
        for b, batches in enumerate(zip(*(t.batches(epoch) for t in self.train))):
            if b >= steps:
                break
            self.runner(*stack_batches(batches), *stack_batches([next(s) for s in streams]))
        return [step_metrics(sums, cfg.sd_lambda, lr) for sums in step.read_metrics()]

    def save(self, epoch: int, rows: list[dict[str, float]], lives: list, started: float) -> None:
        """Per seed: genotype, alphas and metrics of this epoch; then all seeds' checkpoints as one commit."""
        genotypes = self.model.genotype()
        lr = learning_rate(self.cfg, epoch)
        rng = get_rng_state()
        states = []
        for i, (out, row) in enumerate(zip(self.outs, rows)):
            cache = self.step.cache.seed(i) if self.step.cache is not None else None
            row["teacher_coverage"] = float(cache.coverage(epoch + 1)) if cache is not None else 0.0
            row["num_skip_connect"] = count_op(genotypes[i], "skip_connect")
            row["epoch_seconds"] = time.perf_counter() - started
            save_genotype(out / "genotypes" / f"epoch_{epoch:03d}.json", genotypes[i])
            state = seed_checkpoint(self.step, i, lr)
            alphas = {k: v.cpu().clone() for k, v in state["model"].items() if k.startswith("alphas_")}
            files.torch_save(out / "alphas" / f"epoch_{epoch:03d}.pt", alphas)
            self.histories[i].append({"epoch": epoch, **row})
            log_epoch(lives[i], epoch, self.histories[i][-1])
            states.append({"epoch": epoch, "rng": rng, "history": self.histories[i], **state})
        self.group.save(self.cfgs, states)
        log.info(
            "epoch %d/%d: %s",
            epoch + 1,
            self.cfg.epochs,
            " | ".join(f"seed {c.seed} valid acc {r['valid/acc']:.2f}" for c, r in zip(self.cfgs, rows)),
        )

    def saved(self) -> str:
        """What the seeds' checkpoints hold now, for the message of an interruption."""
        total, pending = self.cfg.epochs, self.group.pending()
        done = [0 if e is None else e + 1 for e in self.group.committed()]
        if len(set(done)) > 1:
            held = "the seeds' checkpoint.pt hold epochs " + ", ".join(
                f"{d}/{total} (seed {c.seed})" for c, d in zip(self.cfgs, done)
            )
        elif done[0]:
            held = f"each seed's checkpoint.pt holds epoch {done[0]}/{total}"
        else:
            held = "no seed's checkpoint.pt holds an epoch yet" if pending is not None else "no epoch was completed"
        if pending is not None:
            held += f"; epoch {pending + 1}/{total} is written for every seed and the rerun commits it"
        return held

    def finish(self) -> list[SearchResult]:
        """Per seed: the final supernet measured in eval mode on the alpha half, genotype.json, summary.json."""
        results = []
        for i, (c, out, history) in enumerate(zip(self.cfgs, self.outs, self.histories)):
            ref = self.model.reference_model().to(self.device)
            ref.load_state_dict(self.model.reference_state_dict(i))
            stacked = list(self.cfg.seeds)
            results.append(write_result(c, out, ref, self.data, history, self.device, stacked_with_seeds=stacked))
        return results


def run_search_seeds(cfg: SearchConfig) -> list[SearchResult]:
    """Run (or resume) the searches of ``cfg.seeds`` stacked in one process; one result per seed."""
    locks = []
    cfgs = seed_configs(cfg)
    check_distinct_folders(cfgs)
    try:
        for c in cfgs:
            if Path(c.out).is_dir():
                locks.append(files.RunLock(c.out).acquire())
        runs = SeededRuns(cfg)
        for c, out in zip(runs.cfgs, runs.outs):
            out.mkdir(parents=True, exist_ok=True)
            if not any(lock.folder == Path(c.out) for lock in locks):
                locks.append(files.RunLock(c.out).acquire())
        runs.group.settle()  # an interrupted commit: finished or discarded, as the checkpoints were read
        for c, out in zip(runs.cfgs, runs.outs):
            files.remove_stale_temporaries(out)
            files.write_yaml(out / "config.yaml", cfgmod.to_dict(c))
        lives = [replay_live(out / "dvclive", h) for out, h in zip(runs.outs, runs.histories)]
        try:
            for epoch in range(runs.start_epoch, cfg.epochs):
                started = time.perf_counter()
                runs.save(epoch, runs.epoch(epoch), lives, started)
            for live in lives:
                live.end()
            return runs.finish()
        except KeyboardInterrupt as exc:
            for live in lives:
                live.end()
            raise interrupted(exc, f"{runs.saved()}; rerun the same command to resume") from None
    finally:
        for lock in locks:
            lock.release()
