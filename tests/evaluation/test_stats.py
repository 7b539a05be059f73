"""Model statistics of Tables 2 and 3: parameter counts, the mult-add counter's convention,
the paper's figures beside ours, and the ``sd-darts stats`` command."""

from __future__ import annotations

import json

import pytest
import torch

from sd_darts.cli import main
from sd_darts.evaluation.networks import NetworkCIFAR
from sd_darts.evaluation.stats import COUNTER, genotype_stats, model_stats
from sd_darts.genotypes import DARTS_V2, SD_DARTS, genotype_to_dict


def test_darts_v2_published_sizes():
    cifar = model_stats(DARTS_V2, "cifar")
    assert cifar["params"] == 3_349_342  # DARTS: 3.3M (3.35 to two decimals)
    assert round(cifar["params_m"], 2) == 3.35
    imagenet = model_stats(DARTS_V2, "imagenet")
    assert round(imagenet["params_m"], 1) == 4.7  # DARTS Table 3: 4.7M
    # DARTS quotes 574M with an unpublished counter; conv+linear MACs give ~530M, within the
    # 523-545M that common counters report for DARTS_V2.
    assert 523 <= imagenet["mult_adds_m"] <= 545


def _hand_mult_adds(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of every Conv2d and Linear, from their output shapes."""
    total = 0

    def conv_hook(mod, _inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += out.numel() * (mod.in_channels // mod.groups) * k

    def linear_hook(mod, _inp, out):
        nonlocal total
        total += out.numel() * mod.in_features

    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d):
            mod.register_forward_hook(conv_hook)
        elif isinstance(mod, torch.nn.Linear):
            mod.register_forward_hook(linear_hook)
    with torch.no_grad():
        model(x)
    return total


def test_counter_convention_is_conv_and_linear_macs():
    """The stated convention (conv + linear multiply-accumulates, BN/pool/ReLU/additions not
    counted, auxiliary head excluded) is what the counter counts, on a real CPU network."""
    net = NetworkCIFAR(6, 10, 3, True, SD_DARTS).eval()
    expected = _hand_mult_adds(net, torch.randn(1, 3, 32, 32))
    got = model_stats(SD_DARTS, "cifar", init_channels=6, layers=3)
    assert got["mult_adds"] == expected
    assert got["params"] == sum(p.numel() for n, p in net.named_parameters() if not n.startswith("auxiliary_head."))
    assert "BatchNorm" in COUNTER and "auxiliary head excluded" in COUNTER


def test_sd_darts_table_columns_carry_paper_values_and_differences():
    stats = genotype_stats(SD_DARTS, "SD_DARTS")
    assert stats["cifar"]["paper"] == {"params_m": 3.3}
    assert stats["imagenet"]["paper"] == {"params_m": 4.7, "mult_adds_m": 534.0}
    for net, key in (("cifar", "params_m"), ("imagenet", "params_m"), ("imagenet", "mult_adds_m")):
        e = stats[net]
        assert e[f"{key}_diff"] == pytest.approx(e[key] - e["paper"][key])
    assert stats["cifar"]["image_size"] == 32 and stats["imagenet"]["image_size"] == 224
    assert (stats["imagenet"]["init_channels"], stats["imagenet"]["layers"]) == (48, 14)


def test_stats_cli_json_and_text(capsys, tmp_path):
    assert main(["stats", "--genotype", "DARTS_V2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cifar"]["params"] == 3_349_342
    assert data["imagenet"]["paper"]["mult_adds_m"] == 574.0
    assert "flop_counter" in data["counter"]

    assert main(["stats"]) == 0
    text = capsys.readouterr().out
    assert "SD_DARTS" in text and "534" in text and "convention:" in text

    path = tmp_path / "genotype.json"
    path.write_text(json.dumps(genotype_to_dict(DARTS_V2)))
    assert main(["stats", "--genotype", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cifar"]["params"] == 3_349_342 and data["cifar"]["paper"] == {}


def test_stats_cli_bad_genotype(capsys, tmp_path):
    assert main(["stats", "--genotype", "NO_SUCH_GENOTYPE"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["stats", "--genotype", str(bad)]) == 2
