"""Time one full SD-DARTS search step: alpha step + weight step + KD (a benchmark, not a test).

Prints JSON: milliseconds per step (median and mean over the timed steps), peak memory
(CUDA: torch.cuda.max_memory_allocated; CPU: the process's peak RSS) and the configuration.

    python benchmarks/search_step.py --device cuda --batch-size 64 --init-channels 16 --layers 8
    python benchmarks/search_step.py --device cpu --batch-size 8 --init-channels 4 --layers 5 --steps 3
"""

from __future__ import annotations

import argparse
import json

import torch
from _timing import time_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="darts", choices=("darts", "nb201"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--init-channels", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--unrolled", action="store_true")
    parser.add_argument("--method", default="sd-darts", choices=("darts", "sd-darts"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup-steps", type=int, default=2)
    args = parser.parse_args()

    from sd_darts.architect import Architect
    from sd_darts.distill import TeacherCache
    from sd_darts.runtime import pick_device
    from sd_darts.search import SearchConfig, SearchObjective
    from sd_darts.spaces import get_space

    device = pick_device(args.device)
    cfg = SearchConfig(
        method=args.method,
        space=args.space,
        dataset="cifar10",
        epochs=2,
        warmup_epochs=0,
        window=2,
        init_channels=args.init_channels,
        layers=args.layers,
        batch_size=args.batch_size,
        unrolled=args.unrolled,
        device=str(device),
    )
    cfg.validate()
    torch.manual_seed(0)
    model = get_space(args.space).build(cfg.init_channels, cfg.layers, 10).to(device)
    n = 4 * args.batch_size
    cache = TeacherCache(n, 10, cfg.window, device) if args.method == "sd-darts" else None
    objective = SearchObjective(model, cfg, cache)
    objective.set_epoch(1)  # KD active, teacher from epoch 0
    if cache is not None:
        cache.record(torch.arange(n, device=device), torch.softmax(torch.randn(n, 10, device=device), -1), 0)
    w_opt = torch.optim.SGD(model.weights(), lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    architect = Architect(
        model,
        objective,
        arch_learning_rate=cfg.arch_learning_rate,
        arch_weight_decay=cfg.arch_weight_decay,
        unrolled=cfg.unrolled,
    )

    def batch(offset):
        x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
        y = torch.randint(0, 10, (args.batch_size,), device=device)
        idx = torch.arange(offset, offset + args.batch_size, device=device)
        return x, y, idx

    train, valid = batch(0), batch(args.batch_size)

    def step():
        architect.step(train, valid, cfg.learning_rate, w_opt)
        w_opt.zero_grad(set_to_none=True)
        loss, _ = objective(*train, record=True, track_kd=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.weights(), cfg.grad_clip)
        w_opt.step()

    timing = time_steps(step, device, args.warmup_steps, args.steps)
    print(
        json.dumps(
            {
                "benchmark": "search_step",
                "device": str(device),
                "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "torch": torch.__version__,
                "space": args.space,
                "method": args.method,
                "unrolled": args.unrolled,
                "batch_size": args.batch_size,
                "init_channels": cfg.init_channels,
                "layers": cfg.layers,
                "image_size": args.image_size,
                "steps": args.steps,
                **timing,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
