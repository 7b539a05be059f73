"""One first-order search step, this package's paths beside the xautodl peer (a benchmark, not a
test).

A step is an alpha step (validation batch) and a weight step (training batch).  Variants, all
in one process on the same device and settings, timed round-robin:

  darts-reference    sd_darts.search.loop's loop body: Architect + SearchObjective (SD-DARTS, KD on)
                     + SGD + clip_grad_norm_ on the reference DartsSupernet (``--layers`` cells)
  darts-fused        FirstOrderStep on the fused supernet (same math, sd_darts/search/step.py)
  darts-fused-graph  the same step captured in one CUDA graph (CUDA only)
  darts-fused-compile  the same step with torch.compile of the supernet (``--compile``)
  darts-stacked      FirstOrderStep on ``--seeds`` seeds stacked in one model
  darts-reference-6 / darts-fused-6   our supernet at the peer's size (6 cells)
  peer-darts-6       xautodl NASNetworkDARTS, N=2 (6 cells), xautodl's DARTS-V1 step (CE only)
  nb201-reference / nb201-step        our NB201 supernet: Architect loop / FirstOrderStep
  nb201-fused / nb201-fused-graph     FirstOrderStep on the fused NB201 supernet (eager / CUDA graph)
  peer-nb201         xautodl TinyNetworkDarts (C=16, N=5), DARTS-V1 step

Prints a JSON list, one object per variant: ``benchmark``, ``variant``, ``device``,
``ms_per_step_median`` (and mean), ``peak_memory_bytes`` (memory the variant holds — parameters,
buffers, optimiser state, teacher cache, batch — plus the peak its step allocates on top),
``ops_per_step`` (profiler: aten operators called from Python or the autograd engine),
``compute_ops_per_step`` (the same without pure views), ``saved_bytes_max_pass`` (activations
autograd saves in one forward pass), settings, and ratios to the peer / to one seed.

    python benchmarks/search_step.py --device cpu --space all --batch-size 16
    python benchmarks/search_step.py --device cuda --space all --out runs/bench/search_step.json

``--space darts|nb201|all`` picks the variants (default: the DARTS ones), ``--method darts``
switches the KD term off in this package's variants (the peers are plain DARTS either way).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from _measure import count_ops, peak_bytes, resident_bytes, saved_activation_bytes, time_interleaved

ALL = (
    "darts-reference",
    "darts-fused",
    "darts-fused-graph",
    "darts-fused-compile",
    "darts-stacked",
    "darts-reference-6",
    "darts-fused-6",
    "peer-darts-6",
    "nb201-reference",
    "nb201-step",
    "nb201-fused",
    "nb201-fused-graph",
    "peer-nb201",
)
CLASSES = 10


class Variant:
    """A step closure with what it holds (for memory) and the module whose forward passes count."""

    def __init__(self, step, model, holds, batch_size, note=""):
        self.step, self.model, self.holds, self.batch_size, self.note = step, model, holds, batch_size, note


def _batches(args, device, seeds=None):
    g = torch.Generator().manual_seed(1)
    lead = () if seeds is None else (seeds,)
    B, size = args.batch_size, args.image_size
    x = torch.randn(*lead, B, 3, size, size, generator=g)
    y = torch.randint(0, CLASSES, (*lead, B), generator=g)
    xv = torch.randn(*lead, B, 3, size, size, generator=g)
    yv = torch.randint(0, CLASSES, (*lead, B), generator=g)
    i = torch.arange(B).expand(*lead, B).contiguous()
    iv = (torch.arange(B) + B).expand(*lead, B).contiguous()
    return tuple(t.to(device) for t in (x, y, i, xv, yv, iv))


def _filled_cache(n, device, seeds=None):
    """A teacher cache holding one earlier epoch for every sample: the KD term is live."""
    from sd_darts.search.distill import TeacherCache

    g = torch.Generator().manual_seed(2)
    if seeds is None:
        cache = TeacherCache(n, CLASSES, 2, device)
        cache.record(
            torch.arange(n, device=device), torch.softmax(torch.randn(n, CLASSES, generator=g), -1).to(device), 0
        )
        return cache
    cache = TeacherCache(n, CLASSES, 2, device, num_seeds=seeds)
    for s in range(seeds):
        probs = torch.softmax(torch.randn(n, CLASSES, generator=g), -1).to(device)
        cache.seed(s).record(torch.arange(n, device=device), probs, 0)
    return cache


def reference_variant(args, device, layers, space="darts"):
    from sd_darts.search.architect import Architect
    from sd_darts.search.config import SearchConfig
    from sd_darts.search.distill import SearchObjective
    from sd_darts.search.step import reference_step
    from sd_darts.spaces import get_space

    cfg = SearchConfig(
        method=args.method,
        space=space,
        epochs=2,
        warmup_epochs=0,
        window=2,
        init_channels=args.init_channels,
        layers=layers,
        batch_size=args.batch_size,
    )
    cfg.validate()
    torch.manual_seed(0)
    model = get_space(space).build(cfg.init_channels, cfg.layers, CLASSES).to(device)
    cache = _filled_cache(2 * args.batch_size, device) if args.method == "sd-darts" else None
    objective = SearchObjective(model, cfg, cache)
    objective.set_epoch(1)
    w_opt = torch.optim.SGD(model.weights(), lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    architect = Architect.from_config(model, objective, cfg)
    x, y, i, xv, yv, iv = batch = _batches(args, device)

    def step():
        reference_step(architect, objective, w_opt, (x, y, i), (xv, yv, iv), cfg.learning_rate, cfg.grad_clip)

    holds = [model, batch, w_opt.state, architect.optimizer.state] + ([cache.probs, cache.epochs] if cache else [])
    return Variant(step, model, holds, args.batch_size)


def step_variant(args, device, layers, space="darts", impl="fused", seeds=None, graph=False, compile=False):
    from sd_darts.search.fast import FirstOrderStep, GraphedStep, configure_backends
    from sd_darts.search.stacked import build_stacked
    from sd_darts.search.step import StepSettings
    from sd_darts.spaces import get_space

    torch.manual_seed(0)
    if seeds:
        model = build_stacked(list(range(seeds)), args.init_channels, layers, CLASSES)
    elif space == "darts":
        model = get_space(space).build(args.init_channels, layers, CLASSES, impl=impl)
    else:
        model = get_space(space).build(args.init_channels, layers, CLASSES, impl=impl)
    model = model.to(device)
    configure_backends(device)
    cache = _filled_cache(2 * args.batch_size, device, seeds) if args.method == "sd-darts" else None
    settings = StepSettings(method=args.method, warmup_epochs=0)
    step = FirstOrderStep(model, settings, cache, amp=args.amp == "bf16", compile="model" if compile else None)
    step.set_epoch(1, 0.025)
    batch = _batches(args, device, seeds)
    run = GraphedStep(step, warmup=3) if graph else step
    holds = [model, batch, step.momentum_buffer, step.exp_avg, step.exp_avg_sq]
    if cache is not None:
        holds += [cache.probs, cache.epochs]
    return Variant(lambda: run(*batch), model, holds, args.batch_size * (seeds or 1))


def peer_variant(args, device, kind):
    """xautodl's DARTS-V1 first-order step: weight step (CE, clip 5) then alpha step (CE)."""
    from xautodl.models.cell_operations import SearchSpaceNames

    torch.manual_seed(0)
    if kind == "darts":
        from xautodl.models.cell_searchs.search_model_darts_nasnet import NASNetworkDARTS

        net = NASNetworkDARTS(args.init_channels, 2, 4, 4, 3, CLASSES, SearchSpaceNames["darts"], False, True)
    else:
        from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts

        net = TinyNetworkDarts(args.init_channels, 5, 4, CLASSES, SearchSpaceNames["nas-bench-201"], False, True)
    net = net.to(device)
    w_opt = torch.optim.SGD(net.get_weights(), 0.025, momentum=0.9, weight_decay=3e-4, nesterov=False)
    a_opt = torch.optim.Adam(net.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    x, y, _, xv, yv, _ = batch = _batches(args, device)

    def step():
        w_opt.zero_grad()
        _, logits = net(x)
        F.cross_entropy(logits, y).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5)
        w_opt.step()
        a_opt.zero_grad()
        _, logits = net(xv)
        F.cross_entropy(logits, yv).backward()
        a_opt.step()

    return Variant(
        step, net, [net, batch, w_opt.state, a_opt.state], args.batch_size, note="CE only (xautodl DARTS-V1)"
    )


def build(name, args, device):
    L = args.layers
    if name == "darts-reference":
        return reference_variant(args, device, L)
    if name == "darts-fused":
        return step_variant(args, device, L)
    if name == "darts-fused-graph":
        return step_variant(args, device, L, graph=True) if device.type == "cuda" else None
    if name == "darts-fused-compile":
        return step_variant(args, device, L, compile=True) if args.compile else None
    if name == "darts-stacked":
        return step_variant(args, device, L, seeds=args.seeds)
    if name == "darts-reference-6":
        return reference_variant(args, device, 6)
    if name == "darts-fused-6":
        return step_variant(args, device, 6)
    if name == "peer-darts-6":
        return peer_variant(args, device, "darts")
    if name == "nb201-reference":
        return reference_variant(args, device, 5, space="nb201")
    if name == "nb201-step":
        return step_variant(args, device, 5, space="nb201", impl="reference")
    if name == "nb201-fused":
        return step_variant(args, device, 5, space="nb201")
    if name == "nb201-fused-graph":
        return step_variant(args, device, 5, space="nb201", graph=True) if device.type == "cuda" else None
    if name == "peer-nb201":
        return peer_variant(args, device, "nb201")
    raise ValueError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 on CUDA, 16 on CPU")
    parser.add_argument("--init-channels", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=4, help="seeds of the darts-stacked variant")
    parser.add_argument(
        "--space",
        default="darts",
        choices=("darts", "nb201", "all"),
        help="which variants: the DARTS-space ones, the NB201 ones, or all (default: darts)",
    )
    parser.add_argument(
        "--variants", default=None, help=f"comma-separated subset of {','.join(ALL)} (overrides --space)"
    )
    parser.add_argument(
        "--method", default="sd-darts", choices=("darts", "sd-darts"), help="this package's variants: KD term or not"
    )
    parser.add_argument("--rounds", "--steps", type=int, default=5, help="timed steps per variant (interleaved)")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--amp", default="none", choices=("none", "bf16"))
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory and op-count passes")
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    args = parser.parse_args()

    from sd_darts.utils.runtime import pick_device

    device = pick_device(args.device)
    if args.batch_size is None:
        args.batch_size = 64 if device.type == "cuda" else 16
    if args.variants:
        names = ALL if args.variants == "all" else tuple(v.strip() for v in args.variants.split(",") if v.strip())
    else:
        names = tuple(
            v
            for v in ALL
            if args.space == "all" or (v.startswith("nb201") or v == "peer-nb201") == (args.space == "nb201")
        )
    unknown = [n for n in names if n not in ALL]
    if unknown:
        sys.exit(f"unknown variants {unknown}; known: {', '.join(ALL)}")
    variants = {}
    for name in names:
        v = build(name, args, device)
        if v is not None:
            variants[name] = v
    timing = time_interleaved({k: v.step for k, v in variants.items()}, device, args.warmup_steps, args.rounds)
    results = []
    for name, v in variants.items():
        row = {
            "benchmark": "search_step",
            "variant": name,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "batch_size": args.batch_size,
            "images_per_step": v.batch_size,
            "init_channels": args.init_channels,
            "image_size": args.image_size,
            "amp": args.amp,
            "method": "xautodl DARTS-V1" if name.startswith("peer") else args.method,
            "rounds": args.rounds,
            **timing[name],
        }
        if not args.no_memory:
            row["peak_memory_bytes"] = resident_bytes(*v.holds) + peak_bytes(v.step, device)
            row["peak_memory_kind"] = (
                "resident + step peak (" + ("cuda allocator" if device.type == "cuda" else "profiler allocations") + ")"
            )
            if not name.endswith("-graph"):  # a replayed graph runs no Python: nothing to count
                row.update(count_ops(v.step, device))
                row.update(saved_activation_bytes(v.step, v.model))
        else:
            row["peak_memory_bytes"] = None
        if v.note:
            row["note"] = v.note
        results.append(row)
    by = {r["variant"]: r for r in results}

    def ratio(a, b, key="ms_per_step_median"):
        if a in by and b in by and by[b].get(key):
            return round(by[a][key] / by[b][key], 3)
        return None

    for r in results:
        for peer, mine in (("peer-darts-6", "darts"), ("peer-nb201", "nb201")):
            if r["variant"].startswith(mine) and peer in by:
                r[f"time_vs_{peer}"] = ratio(r["variant"], peer)
                r[f"peak_memory_vs_{peer}"] = ratio(r["variant"], peer, "peak_memory_bytes")
        if r["variant"].startswith("darts") and "darts-reference" in by and r.get("ops_per_step"):
            r["ops_vs_darts-reference"] = ratio(r["variant"], "darts-reference", "ops_per_step")
            r["saved_bytes_vs_darts-reference"] = ratio(r["variant"], "darts-reference", "saved_bytes_max_pass")
    if "darts-stacked" in by and "darts-fused" in by:
        s = by["darts-stacked"]
        s["seeds"] = args.seeds
        s["throughput_vs_one_seed"] = round(
            args.seeds * by["darts-fused"]["ms_per_step_median"] / s["ms_per_step_median"], 3
        )
        if s.get("ops_per_step") and by["darts-fused"].get("ops_per_step"):
            s["ops_vs_one_seed"] = ratio("darts-stacked", "darts-fused", "ops_per_step")
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


if __name__ == "__main__":
    main()
