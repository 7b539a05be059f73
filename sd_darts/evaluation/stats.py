"""Parameter and mult-add counts of the evaluation networks (paper Tables 2 and 3).

Counted as DARTS's ``count_parameters_in_MB`` and with ``FlopCounterMode``; the convention is
printed with every output (:data:`COUNTER`) because no official DARTS mult-add counter exists
(docs/evaluation.md, "Model statistics").
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import torch

from ..genotypes import genotype_to_dict
from .recipes import CifarRecipe, ImageNetRecipe

COUNTER = (
    "mult-adds = total FLOPs / 2 of torch.utils.flop_counter.FlopCounterMode: multiply-accumulates of "
    "convolutions (depthwise and 1x1 included) and of the linear classifier; BatchNorm, ReLU, pooling, "
    "node additions and concatenation not counted; auxiliary head excluded (eval mode); batch of one image. "
    "params: all parameters (BatchNorm affine and classifier included) except the auxiliary head"
)


def _recipe_sizes(recipe, num_classes: int) -> dict[str, Any]:
    cfg = recipe.Config()
    return {
        "network": recipe.network.__name__,
        "init_channels": cfg.init_channels,
        "layers": cfg.layers,
        "num_classes": num_classes,
        "image_size": cfg.input_size,
    }


#: The paper's evaluation settings (network, C, cells, input size), read from the recipes' defaults.
SETTINGS = {
    "cifar": _recipe_sizes(CifarRecipe, num_classes=10),
    "imagenet": _recipe_sizes(ImageNetRecipe, num_classes=1000),
}

#: Rows of the paper's tables holding the published figures of each shipped genotype:
#: genotype name -> {setting: (table, architecture column value)}.
PAPER_ROWS = {
    "SD_DARTS": {"cifar": ("table2", "SD-DARTS"), "imagenet": ("table3", "SD-DARTS")},
    "DARTS_V2": {"cifar": ("table2", "DARTS (2nd order)"), "imagenet": ("table3", "DARTS (2nd order)")},
    "DARTS_V1": {"cifar": ("table2", "DARTS (1st order)")},
}


def model_stats(
    genotype,
    network: str = "cifar",
    init_channels: int | None = None,
    layers: int | None = None,
    num_classes: int | None = None,
    image_size: int | None = None,
) -> dict[str, Any]:
    """Parameters (without the auxiliary head) and mult-adds of one evaluation network.

    ``network`` is ``'cifar'`` or ``'imagenet'``; unset sizes take the paper's values
    (:data:`SETTINGS`).  Returns ``params``, ``params_m``, ``mult_adds``, ``mult_adds_m`` and
    the settings used; ``mult_adds_by_op`` splits the count by ATen operator.
    """
    if network not in SETTINGS:
        raise ValueError(f"unknown network {network!r}; use 'cifar' or 'imagenet'")
    s = dict(SETTINGS[network])
    for key, value in (
        ("init_channels", init_channels),
        ("layers", layers),
        ("num_classes", num_classes),
        ("image_size", image_size),
    ):
        if value is not None:
            s[key] = value
    key = json.dumps(genotype_to_dict(genotype), sort_keys=True)
    result = _count(key, network, s["init_channels"], s["layers"], s["num_classes"], s["image_size"])
    return {**copy.deepcopy(result)}


@functools.lru_cache(maxsize=32)
def _count(
    genotype_json: str, network: str, init_channels: int, layers: int, num_classes: int, image_size: int
) -> dict[str, Any]:
    """Build the network and count; cached per genotype and setting (counting is deterministic)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ..genotypes import genotype_from_dict
    from .networks import NetworkCIFAR, NetworkImageNet, count_parameters

    genotype = genotype_from_dict(json.loads(genotype_json))
    s = {
        **SETTINGS[network],
        "init_channels": init_channels,
        "layers": layers,
        "num_classes": num_classes,
        "image_size": image_size,
    }
    cls = NetworkCIFAR if network == "cifar" else NetworkImageNet
    model = cls(s["init_channels"], s["num_classes"], s["layers"], True, genotype).eval()
    x = torch.zeros(1, 3, s["image_size"], s["image_size"])
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    flops = counter.get_total_flops()
    by_op = {
        str(op).split(".")[1] if "." in str(op) else str(op): int(n) // 2
        for op, n in counter.get_flop_counts().get("Global", {}).items()
    }
    params = count_parameters(model)
    return {
        **s,
        "params": params,
        "params_m": params / 1e6,
        "params_with_aux": count_parameters(model, include_auxiliary=True),
        "mult_adds": flops // 2,
        "mult_adds_m": flops / 2 / 1e6,
        "mult_adds_by_op": by_op,
    }


def _paper_value(name: str, network: str, column: str) -> float | None:
    from ..paper import load_table

    rows = PAPER_ROWS.get(name, {})
    if network not in rows:
        return None
    table, arch = rows[network]
    df = load_table(table)
    match = df[df["architecture"] == arch]
    if len(match) != 1 or column not in match.columns:
        return None
    text = str(match.iloc[0][column]).strip().lstrip("~")
    try:
        return float(text)
    except ValueError:
        return None


def genotype_stats(genotype, name: str | None = None) -> dict[str, Any]:
    """Statistics of ``genotype`` in both paper settings, with the paper's figures where the
    genotype is a shipped one (``name`` in :data:`PAPER_ROWS`) and ours minus the paper's."""
    out: dict[str, Any] = {"genotype": name, "counter": COUNTER}
    for network, table in (("cifar", "table2"), ("imagenet", "table3")):
        st = model_stats(genotype, network)
        entry = {
            k: st[k]
            for k in (
                "network",
                "init_channels",
                "layers",
                "num_classes",
                "image_size",
                "params",
                "params_m",
                "params_with_aux",
                "mult_adds",
                "mult_adds_m",
                "mult_adds_by_op",
            )
        }
        entry["table"] = table
        paper = {}
        for ours, column in (("params_m", "params_m"), ("mult_adds_m", "mult_adds_m")):
            value = _paper_value(name or "", network, column)
            if value is not None:
                paper[ours] = value
                entry[f"{ours}_diff"] = st[ours] - value
        entry["paper"] = paper
        out[network] = entry
    return out


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable table of :func:`genotype_stats` (paper value and difference beside ours)."""
    from tabulate import tabulate

    def paper_cells(entry, key, fmt):
        if key not in entry["paper"]:
            return ["-", "-"]
        return [f"{entry['paper'][key]:g}", format(entry[f"{key}_diff"], fmt)]

    rows = []
    for network, label in (("cifar", "CIFAR-10 (Table 2)"), ("imagenet", "ImageNet (Table 3)")):
        e = stats[network]
        setting = f"C={e['init_channels']}, {e['layers']} cells, {e['image_size']}x{e['image_size']}"
        rows.append(
            [
                label,
                setting,
                f"{e['params_m']:.2f}",
                *paper_cells(e, "params_m", "+.2f"),
                f"{e['mult_adds_m']:.0f}",
                *paper_cells(e, "mult_adds_m", "+.0f"),
            ]
        )
    header = ["network", "setting", "params (M)", "paper", "diff", "mult-adds (M)", "paper", "diff"]
    title = f"Model statistics of {stats['genotype'] or 'the genotype'}"
    return f"{title}\n{tabulate(rows, headers=header, tablefmt='github', disable_numparse=True)}\nconvention: {stats['counter']}"


__all__ = ["model_stats", "genotype_stats", "format_stats", "COUNTER", "SETTINGS", "PAPER_ROWS"]
