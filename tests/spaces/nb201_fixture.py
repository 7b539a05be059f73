"""A small NAS-Bench-201 benchmark file in the official format, for tests.

The official ``NAS-Bench-201-v1_*.pth`` is ``torch.save`` of

    {"meta_archs": [arch_str, ...],                    # all cells, index = position
     "arch2infos": {index: {"less": ArchResults.state_dict(),   # hp='12'
                            "full": ArchResults.state_dict()}}, # hp='200'
     "evaluated_indexes": [index, ...]}

where an ``ArchResults`` holds one ``ResultsCount`` per (dataset, seed) with per-epoch train
and eval dictionaries (eval keys ``'<split>@<epoch>'``).  This module builds those objects
with the API's own classes (``nas_201_api.ResultsCount`` / ``ArchResults``) and saves their
``state_dict()``s, as the benchmark's generator did, with made-up accuracies:

* final-epoch accuracy of (arch i, column, seed) = ``base + seed offset`` with a distinct base
  per arch and column, so every column, dataset and split reads a different number;
* every earlier epoch is 20 points lower and the 12-epoch (``'less'``) results 30 points lower,
  so reading the wrong epoch or the wrong hp is caught;
* datasets have different numbers of seeds (as in v1_1) so seed averaging is exercised;
* parameter counts and FLOPs are numpy scalars, as in the real files.

:func:`write_benchmark` returns the expected Table 4 values (mean over the seeds of the final
200-epoch accuracies) per arch string.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

SEEDS_FULL = {
    "cifar10-valid": (777, 888, 999),
    "cifar10": (777, 888),
    "cifar100": (777, 888, 999),
    "ImageNet16-120": (777,),
}
SEEDS_LESS = {"cifar10-valid": (777, 888), "cifar10": (777,), "cifar100": (777,), "ImageNet16-120": (777,)}
EVAL_SETS = {
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
NUM_CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
SEED_OFFSET = {777: -0.3, 888: 0.1, 999: 0.5}

#: (dataset, split) of each Table 4 column, keyed as in sd_darts.spaces.nb201.benchmark.COLUMNS.
COLUMN_SPLITS = {
    "cifar10_valid": ("cifar10-valid", "x-valid"),
    "cifar10_test": ("cifar10", "ori-test"),
    "cifar100_valid": ("cifar100", "x-valid"),
    "cifar100_test": ("cifar100", "x-test"),
    "imagenet16_valid": ("ImageNet16-120", "x-valid"),
    "imagenet16_test": ("ImageNet16-120", "x-test"),
}

DEFAULT_ARCHS = (
    # DARTS' collapse to skip connections (Table 4: 39.77 / 54.30 ...)
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
)

#: Listed in meta_archs but never evaluated (the real v1_0 file has such cells for some hps).
UNEVALUATED_ARCH = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"


def final_accuracy(arch: int, dataset: str, split: str, seed: int) -> float:
    """Made-up final 200-epoch accuracy (%) of one trial."""
    d = list(NUM_CLASSES).index(dataset)
    s = ("train", "x-valid", "x-test", "ori-test").index(split)
    return 20.0 + 9.0 * arch + 2.0 * d + 0.5 * s + SEED_OFFSET[seed]


def _trial(arch_index: int, arch_str: str, dataset: str, seed: int, epochs: int, drop: float):
    from nas_201_api import ResultsCount

    last = epochs - 1

    def acc(split: str, e: int) -> float:
        return final_accuracy(arch_index, dataset, split, seed) - (0.0 if e == last else 20.0) - drop

    train_acc = {e: acc("train", e) for e in range(epochs)}
    train_loss = {e: 1.0 / (1 + e) for e in range(epochs)}
    config = {"channel": 16, "num_cells": 5, "arch_str": arch_str, "class_num": NUM_CLASSES[dataset]}
    params, flops = np.float64(0.1 + 0.01 * arch_index), np.float64(15.0 + arch_index)
    r = ResultsCount(dataset, None, train_acc, train_loss, params, flops, config, seed, epochs, [0.01])
    r.update_train_info(train_acc, {e: 99.0 for e in range(epochs)}, train_loss, {e: 5.0 for e in range(epochs)})
    accs, losses, times = {}, {}, {}
    for split in EVAL_SETS[dataset]:
        for e in range(epochs):
            accs[f"{split}@{e}"] = acc(split, e)
            losses[f"{split}@{e}"] = 0.5
            times[f"{split}@{e}"] = 1.0
    r.update_eval(accs, losses, times)
    return r


def _arch_results(arch_index: int, arch_str: str, seeds: dict, epochs: int, drop: float) -> dict:
    from nas_201_api import ArchResults

    res = ArchResults(arch_index, arch_str)
    for dataset, dataset_seeds in seeds.items():
        for seed in dataset_seeds:
            res.update(dataset, seed, _trial(arch_index, arch_str, dataset, seed, epochs, drop))
    res.clear_params()
    return res.state_dict()


def benchmark_dict(archs: Sequence[str] = DEFAULT_ARCHS) -> dict:
    meta = list(archs) + [UNEVALUATED_ARCH]
    infos = {
        i: {
            "less": _arch_results(i, a, SEEDS_LESS, 12, drop=30.0),
            "full": _arch_results(i, a, SEEDS_FULL, 200, drop=0.0),
        }
        for i, a in enumerate(archs)
    }
    return {"meta_archs": meta, "arch2infos": infos, "evaluated_indexes": list(range(len(archs)))}


def expected_rows(archs: Sequence[str] = DEFAULT_ARCHS) -> dict[str, dict[str, float]]:
    """arch string -> column key -> mean over the benchmark seeds of the final 200-epoch accuracy."""
    out = {}
    for i, a in enumerate(archs):
        out[a] = {
            key: float(np.mean([final_accuracy(i, ds, split, s) for s in SEEDS_FULL[ds]]))
            for key, (ds, split) in COLUMN_SPLITS.items()
        }
    return out


def write_benchmark(path: Path, archs: Sequence[str] = DEFAULT_ARCHS, legacy_format: bool = True) -> dict:
    """Write the file (legacy torch format like the 2020 files, or zip) and return the expected rows."""
    import torch

    torch.save(benchmark_dict(archs), path, _use_new_zipfile_serialization=not legacy_format)
    return expected_rows(archs)
