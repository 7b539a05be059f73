"""A search's run folders: one per seed (``--seeds`` with ``--out 'runs/s{seed}'``), their
settings, and the final measurement, ``genotype.json`` and ``summary.json`` each one ends with."""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data import SearchData, make_loader
from ..errors import UserError
from ..genotypes import count_op, genotype_to_dict, save_genotype
from ..utils import files
from ..utils.config import SettingError
from .config import SearchConfig


@dataclass
class SearchResult:
    out: Path
    genotype: Any
    summary: dict


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
    """The settings of each run folder: ``cfg`` itself, or with ``--seeds`` one per seed (its
    seed, its folder), checked to be what stacked seeds can run."""
    if not cfg.seeds:
        return [cfg]
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
    """Measure the final supernet ``model`` on the whole alpha half (eval mode, no augmentation:
    what the pipeline selects by) and write ``genotype.json`` and ``summary.json``."""
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
