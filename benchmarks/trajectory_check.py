"""Fast path vs reference path over many search steps on one device (a check, not a test).

Runs the same first-order SD-DARTS search (same initial supernet, same batches, KD switched on
half-way) three ways and compares the trajectories:

  reference  sd_darts.search.loop's loop body: Architect + SearchObjective + SGD + clip_grad_norm_
             on the reference DartsSupernet
  fused      FirstOrderStep on the fused supernet
  graph      the same step captured in one CUDA graph (CUDA only)

Prints one JSON object per fast path: ``benchmark``, ``device``, ``ms_per_step_median`` (of the
fast path), ``peak_memory_bytes`` (CUDA allocator peak over the run; null on CPU), the largest
deviation of the alphas from the reference over the run, the relative deviation of the training
losses (median, max), whether the final genotypes agree, and ``pass`` (alphas within
``--alpha-tol``; genotypes equal).  The unit tests prove equality in float64 on CPU; this shows how
float32 rounding (TF32 off) accumulates on the real device at the paper's settings.

    python benchmarks/trajectory_check.py --device cuda --steps 300 --out runs/bench/trajectory.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

CLASSES = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--init-channels", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument(
        "--alpha-tol",
        type=float,
        default=None,
        help="pass threshold on the alpha deviation (default: 1e-8 in float64; in float32 Adam turns "
        "rounding noise on near-zero gradients into steps of size lr, so 2·lr·steps)",
    )
    parser.add_argument("--deadline-s", type=float, default=None, help="stop every run after this many seconds")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from sd_darts.search.architect import Architect
    from sd_darts.search.config import SearchConfig
    from sd_darts.search.distill import SearchObjective, TeacherCache
    from sd_darts.search.fast import FirstOrderStep, GraphedStep
    from sd_darts.search.step import StepSettings, reference_step
    from sd_darts.spaces.darts.fused import FusedDartsSupernet
    from sd_darts.spaces.darts.supernet import DartsSupernet
    from sd_darts.utils.runtime import pick_device

    device = pick_device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    B, n_samples = args.batch_size, 4 * args.batch_size
    steps_per_epoch = max(1, args.steps // 4)
    warmup = 2  # epochs 0-1 plain, KD from epoch 2 (recording from epoch 0: window 2)
    cfg = SearchConfig(
        method="sd-darts",
        epochs=args.steps // steps_per_epoch + 1,
        warmup_epochs=warmup,
        window=2,
        init_channels=args.init_channels,
        layers=args.layers,
        batch_size=B,
    )
    cfg.validate()
    settings = StepSettings.from_config(cfg)
    if args.alpha_tol is None:
        args.alpha_tol = 1e-8 if dtype == torch.float64 else 2 * cfg.arch_learning_rate * args.steps

    def batch(k):
        g = torch.Generator().manual_seed(k)
        perm = torch.randperm(n_samples, generator=g)
        x = torch.randn(B, 3, args.image_size, args.image_size, generator=g)
        xv = torch.randn(B, 3, args.image_size, args.image_size, generator=g)
        # labels tied to the images a little, so that the loss can move
        y = (x[:, 0, :4, :4].sum((1, 2)) > 0).long() * 3 + torch.randint(0, 3, (B,), generator=g)
        yv = (xv[:, 0, :4, :4].sum((1, 2)) > 0).long() * 3 + torch.randint(0, 3, (B,), generator=g)
        return [t.to(device) for t in (x.to(dtype), y, perm[:B], xv.to(dtype), yv, perm[B : 2 * B])]

    def lr(epoch):
        return cfg.learning_rate * (0.5 ** (epoch / 4))

    torch.manual_seed(0)
    base = DartsSupernet(args.init_channels, CLASSES, args.layers).to(dtype)

    def run_reference():
        model = copy.deepcopy(base).to(device)
        cache = TeacherCache(n_samples, CLASSES, 2, device)
        objective = SearchObjective(model, cfg, cache)
        w_opt = torch.optim.SGD(model.weights(), lr=lr(0), momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        architect = Architect.from_config(model, objective, cfg)
        alphas, losses, times, t_start = [], [], [], time.perf_counter()
        for k in range(args.steps):
            epoch = k // steps_per_epoch
            objective.set_epoch(epoch)
            for group in w_opt.param_groups:
                group["lr"] = lr(epoch)
            x, y, i, xv, yv, iv = batch(k)
            t0 = time.perf_counter()
            _, logits, _, _ = reference_step(
                architect, objective, w_opt, (x, y, i), (xv, yv, iv), lr(epoch), cfg.grad_clip
            )
            losses.append(F.cross_entropy(logits.detach(), y).item())
            times.append(time.perf_counter() - t0)
            alphas.append(torch.cat([a.detach().flatten() for a in model.arch_parameters()]).cpu())
            if args.deadline_s and time.perf_counter() - t_start > args.deadline_s:
                break
        return alphas, losses, times, model.genotype()

    def run_fast(graph):
        model = FusedDartsSupernet.from_reference(copy.deepcopy(base)).to(device)
        step = FirstOrderStep(model, settings, TeacherCache(n_samples, CLASSES, 2, device))
        run = GraphedStep(step) if graph else step
        alphas, losses, times, t_start = [], [], [], time.perf_counter()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for k in range(args.steps):
            epoch = k // steps_per_epoch
            if k % steps_per_epoch == 0:
                step.set_epoch(epoch, lr(epoch))
            b = batch(k)
            step.reset_metrics()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            run(*b)
            m = step.read_metrics()[0]  # synchronises
            times.append(time.perf_counter() - t0)
            losses.append(m["train_loss"] / B)
            alphas.append(torch.cat([a.detach().flatten() for a in model.arch_parameters()]).cpu())
            if args.deadline_s and time.perf_counter() - t_start > args.deadline_s:
                break
        peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
        return alphas, losses, times, model.genotype(), peak

    ref_alphas, ref_losses, ref_times, ref_genotype = run_reference()
    results = []
    eager_alphas = None
    for graph in (False, True) if device.type == "cuda" else (False,):
        alphas, losses, times, genotype, peak = run_fast(graph)
        vs_eager = None
        if graph and eager_alphas is not None:  # same kernels, same order: should agree closely
            m = min(len(alphas), len(eager_alphas))
            vs_eager = max(float((a - e).abs().max()) for a, e in zip(alphas[:m], eager_alphas[:m]))
        eager_alphas = alphas if not graph else eager_alphas
        n = min(len(alphas), len(ref_alphas))
        dev_alpha = max(float((a - r).abs().max()) for a, r in zip(alphas[:n], ref_alphas[:n]))
        rel = [abs(a - r) / max(abs(r), 1e-12) for a, r in zip(losses[:n], ref_losses[:n])]
        results.append(
            {
                "benchmark": "trajectory_check",
                "variant": "darts-fused-graph" if graph else "darts-fused",
                "device": str(device),
                "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "torch": torch.__version__,
                "steps_compared": n,
                "batch_size": B,
                "init_channels": args.init_channels,
                "layers": args.layers,
                "dtype": args.dtype,
                "alpha_tol": args.alpha_tol,
                "ms_per_step_median": round(1000 * statistics.median(times[2:] or times), 2),
                "reference_ms_per_step_median": round(1000 * statistics.median(ref_times[2:] or ref_times), 2),
                "peak_memory_bytes": peak,
                "alpha_max_abs_deviation": dev_alpha,
                "alpha_range_reference": float(ref_alphas[n - 1].abs().max()),
                "loss_rel_deviation_median": statistics.median(rel),
                "loss_rel_deviation_max": max(rel),
                "genotypes_equal": genotype == ref_genotype if n == args.steps else None,
                "alpha_max_abs_deviation_vs_fused_eager": vs_eager,
                "pass": dev_alpha <= args.alpha_tol and (genotype == ref_genotype or n < args.steps),
            }
        )
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
