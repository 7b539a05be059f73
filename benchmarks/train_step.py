"""Time one training step of an evaluation network (a benchmark, not a test).

The step is :func:`sd_darts.evaluation.steps.train_step`, the one the recipes run: forward with the
auxiliary head, cross-entropy (+ label smoothing for ImageNet), backward, gradient clipping,
SGD.  Prints JSON: milliseconds per step (median, mean), images per second, peak memory (CUDA:
torch.cuda.max_memory_allocated; CPU: the process's peak RSS) and the configuration, so that
the speed options (bf16 autocast, channels_last) can be compared on a GPU:

    python benchmarks/train_step.py --recipe cifar --device cuda --batch-size 96
    python benchmarks/train_step.py --recipe cifar --device cuda --batch-size 96 --amp bf16 --channels-last
    python benchmarks/train_step.py --recipe imagenet --device cuda --batch-size 256 --amp bf16 --channels-last
    python benchmarks/train_step.py --recipe cifar --device cpu --batch-size 8 --init-channels 8 --layers 5 --steps 3
"""

from __future__ import annotations

import argparse
import json

import torch
from _timing import time_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cifar", choices=("cifar", "imagenet"))
    parser.add_argument("--genotype", default="SD_DARTS")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (96 / 1024)")
    parser.add_argument("--init-channels", type=int, default=None, help="default: the recipe's (36 / 48)")
    parser.add_argument("--layers", type=int, default=None, help="default: the recipe's (20 / 14)")
    parser.add_argument("--amp", default="none", choices=("none", "bf16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--drop-path-prob", type=float, default=None, help="default: the recipe's final value")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup-steps", type=int, default=3)
    args = parser.parse_args()

    from sd_darts.evaluation.recipes import TrainCifarConfig, TrainImageNetConfig, recipe_for, resolve_genotype
    from sd_darts.evaluation.steps import train_step
    from sd_darts.utils.runtime import pick_device

    device = pick_device(args.device)
    cfg = TrainCifarConfig() if args.recipe == "cifar" else TrainImageNetConfig()
    for name in ("batch_size", "init_channels", "layers", "drop_path_prob"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    cfg.amp, cfg.channels_last, cfg.genotype = args.amp, args.channels_last, args.genotype
    cfg.validate()
    num_classes = 10 if args.recipe == "cifar" else 1000
    size = 32 if args.recipe == "cifar" else cfg.image_size
    torch.manual_seed(0)
    model = recipe_for(cfg).build_network(resolve_genotype(cfg.genotype), num_classes).to(device)
    mem = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=mem).train()
    model.drop_path_prob = cfg.drop_path_prob
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.learning_rate,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        fused=device.type == "cuda" or None,  # as the training loop
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    x = torch.randn(cfg.batch_size, 3, size, size, device=device).contiguous(memory_format=mem)
    y = torch.randint(0, num_classes, (cfg.batch_size,), device=device)

    timing = time_steps(lambda: train_step(model, optimizer, x, y, cfg), device, args.warmup_steps, args.steps)
    print(
        json.dumps(
            {
                "benchmark": "train_step",
                "recipe": args.recipe,
                "genotype": args.genotype,
                "device": str(device),
                "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "torch": torch.__version__,
                "batch_size": cfg.batch_size,
                "init_channels": cfg.init_channels,
                "layers": cfg.layers,
                "image_size": size,
                "amp": cfg.amp,
                "channels_last": cfg.channels_last,
                "drop_path_prob": cfg.drop_path_prob,
                "auxiliary_weight": cfg.auxiliary_weight,
                "steps": args.steps,
                **timing,
                "images_per_second": round(1000 * cfg.batch_size / timing["ms_per_step_median"], 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
