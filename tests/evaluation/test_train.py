"""Training recipes (paper §4.2 CIFAR-10, §4.3 ImageNet): schedules, label smoothing, drop-path
ramp, end-to-end runs on digits, exact resume after an interruption, data-parallel runs under
torchrun with 2 CPU processes (gloo), and bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ROOT as REPO

from sd_darts.cli import main
from sd_darts.evaluation.recipes import TrainCifarConfig, TrainImageNetConfig
from sd_darts.evaluation.steps import classification_loss, topk_correct, use_bf16, use_channels_last
from sd_darts.utils import config as cfgmod
from sd_darts.utils.schedules import cosine_lr, drop_path_prob_at, imagenet_lr

TINY = [
    "--dataset",
    "digits",
    "--init-channels",
    "4",
    "--layers",
    "3",
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--max-steps-per-epoch",
    "2",
    "--num-workers",
    "0",
    "--device",
    "cpu",
    "--no-progress",
]


# ------------------------------------------------------------------ schedules and losses


def test_imagenet_lr_corner_epochs():
    """PC-DARTS: warm-up 0.1..0.5 over 5 epochs, then linear decay, gentler over the last 5."""
    lr = lambda e: imagenet_lr(e, 250, 0.5, 5)
    assert lr(0) == pytest.approx(0.1)
    assert lr(4) == pytest.approx(0.5)
    assert lr(5) == pytest.approx(0.5 * 240 / 245)
    assert lr(249) == pytest.approx(0.5 / 1225)
    # The two linear pieces meet: epoch 244 (last of the main decay) and 245 give the same lr.
    assert lr(244) == pytest.approx(lr(245))


@settings(max_examples=50, deadline=None)
@given(epochs=st.integers(11, 400), warmup=st.integers(0, 5), base=st.floats(1e-3, 2.0))
def test_imagenet_lr_shape(epochs, warmup, base):
    lrs = [imagenet_lr(e, epochs, base, warmup) for e in range(epochs)]
    assert all(0 < v <= base + 1e-12 for v in lrs)
    after = lrs[warmup:]
    assert all(a >= b - 1e-12 for a, b in zip(after, after[1:]))  # non-increasing after warm-up
    assert all(a <= b + 1e-12 for a, b in zip(lrs[:warmup], lrs[1:warmup]))  # increasing during it


def test_cosine_lr_darts():
    assert cosine_lr(0, 600, 0.025) == pytest.approx(0.025)
    assert cosine_lr(300, 600, 0.025) == pytest.approx(0.0125)
    assert cosine_lr(600, 600, 0.025) == pytest.approx(0.0, abs=1e-15)
    vals = [cosine_lr(e, 600, 0.025, 0.001) for e in range(600)]
    assert all(a > b for a, b in zip(vals, vals[1:])) and vals[-1] > 0.001


def test_drop_path_ramp():
    cfg = TrainCifarConfig()
    assert drop_path_prob_at(cfg, 0) == 0.0
    assert drop_path_prob_at(cfg, 300) == pytest.approx(0.15)
    assert drop_path_prob_at(cfg, 599) == pytest.approx(0.3 * 599 / 600)


def test_label_smoothing_matches_hand_computation():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    targets = torch.tensor([0, 1])
    eps = 0.1

    def hand(row, target):
        z = sum(math.exp(v) for v in row)
        logp = [v - math.log(z) for v in row]
        q = [(1 - eps) * (k == target) + eps / 3 for k in range(3)]
        return -sum(qk * lk for qk, lk in zip(q, logp))

    expected = (hand([2.0, 1.0, 0.0], 0) + hand([0.0, 0.0, 3.0], 1)) / 2
    assert classification_loss(logits, targets, eps).item() == pytest.approx(expected, rel=1e-6)
    assert classification_loss(logits, targets, 0.0).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, targets).item()
    )


def test_topk_correct():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    targets = torch.tensor([2, 0, 0])
    top1, top2 = topk_correct(logits, targets, ks=(1, 2))
    assert int(top1) == 1 and int(top2) == 2
    (top5,) = topk_correct(logits, targets, ks=(5,))  # capped at 3 classes
    assert int(top5) == 3


def test_paper_defaults_and_fingerprint():
    c = TrainCifarConfig()
    assert (
        c.epochs,
        c.batch_size,
        c.learning_rate,
        c.momentum,
        c.weight_decay,
        c.grad_clip,
        c.auxiliary_weight,
        c.drop_path_prob,
        c.cutout_length,
        c.init_channels,
        c.layers,
    ) == (600, 96, 0.025, 0.9, 3e-4, 5.0, 0.4, 0.3, 16, 36, 20)
    i = TrainImageNetConfig()
    assert (
        i.epochs,
        i.batch_size,
        i.learning_rate,
        i.warmup_epochs,
        i.weight_decay,
        i.label_smoothing,
        i.auxiliary_weight,
        i.init_channels,
        i.layers,
        i.image_size,
    ) == (250, 1024, 0.5, 5, 3e-5, 0.1, 0.4, 48, 14, 224)
    fp = cfgmod.fingerprint_fields(c)
    for name in ("out", "device", "num_workers", "pin_memory", "progress", "channels_last", "data_root"):
        assert name not in fp
    assert "learning_rate" in fp and "seed" in fp


@pytest.mark.parametrize("params", ["params.yaml", "params-smoke.yaml"])
def test_evaluation_trains_in_fp32_by_default_in_every_profile(params):
    """DARTS, PC-DARTS and the paper train in fp32: bf16 and channels_last are opt-in."""
    for cls in (TrainCifarConfig, TrainImageNetConfig):
        c = cls()
        assert c.amp == "none" and c.channels_last is False
        assert not use_bf16(c, torch.device("cuda")) and not use_channels_last(c, torch.device("cuda"))
    raw = yaml.safe_load((REPO / params).read_text())
    for section in ("train_cifar", "train_imagenet"):
        assert raw[section]["amp"] == "none" and raw[section]["channels_last"] is False, (params, section)


def test_cutout_after_normalisation_in_cifar_pipeline():
    from sd_darts.data import load_eval_data

    data = load_eval_data("digits", "unused", cutout_length=16)
    torch.manual_seed(0)
    img, _, _ = data.train[0]
    square = (img == 0).all(dim=0)
    assert int(square.sum()) > 0  # a square of exact zeros (the mean, in normalised units)
    test_img, _, _ = data.test[0]
    assert int((test_img == 0).all(dim=0).sum()) == 0


# ------------------------------------------------------------------ end-to-end runs


def _metrics(out: Path) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    m.pop("train_seconds")
    return m


def _history(out: Path) -> list[dict]:
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in ckpt["history"]]


def _weights(out: Path) -> dict:
    return torch.load(out / "model.pt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full") / "run"
    assert main(["train-cifar", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> Path:
    """The same run, interrupted (Ctrl-C) right after the first epoch's checkpoint."""
    import sd_darts.evaluation.train as ckpt_mod

    out = tmp_path_factory.mktemp("interrupted") / "run"
    real = ckpt_mod.save_checkpoint

    def save_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ckpt_mod, "save_checkpoint", save_then_interrupt)
        assert main(["train-cifar", *TINY, "--out", str(out)]) == 130
    assert not (out / "metrics.json").exists()
    return out


def test_outputs_of_a_run(full_run):
    for name in ("config.yaml", "checkpoint.pt", "metrics.json", "model.pt", "dvclive/metrics.json"):
        assert (full_run / name).exists(), name
    m = json.loads((full_run / "metrics.json").read_text())
    assert m["recipe"] == "train-cifar" and m["world_size"] == 1
    assert 0 <= m["test_error"] <= 100 and 0 <= m["top5_error"] <= m["test_error"]
    assert m["params_m"] == pytest.approx(m["params"] / 1e6)
    history = _history(full_run)
    assert [h["drop_path_prob"] for h in history] == pytest.approx([0.0, 0.15])  # linear ramp
    assert m["test_error"] == pytest.approx(history[-1]["test/top1_error"])  # final epoch, not best
    tsv = (full_run / "dvclive/plots/metrics/test/top1_error.tsv").read_text().splitlines()
    assert len(tsv) == 3  # header + 2 epochs
    # The saved weights rebuild the network without the DDP wrapper's prefix.
    from sd_darts.evaluation.networks import NetworkCIFAR
    from sd_darts.genotypes import genotype_from_dict

    saved = torch.load(full_run / "model.pt", weights_only=True)
    net = NetworkCIFAR(
        saved["init_channels"],
        saved["num_classes"],
        saved["layers"],
        saved["auxiliary"],
        genotype_from_dict(saved["genotype"]),
    )
    net.load_state_dict(saved["state_dict"])


def test_resume_after_interruption_is_exact(full_run, interrupted_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(interrupted_run, out)
    assert len(_history(out)) == 1
    assert main(["train-cifar", *TINY, "--out", str(out)]) == 0
    assert _metrics(out) == _metrics(full_run)
    assert _history(out) == _history(full_run)
    w_full, w_resumed = _weights(full_run), _weights(out)
    assert all(torch.equal(w_full[k], w_resumed[k]) for k in w_full)
    assert len((out / "dvclive/plots/metrics/lr.tsv").read_text().splitlines()) == 3


def test_rerun_same_settings_resumes_other_settings_refused(full_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(full_run, out)
    # Settings outside the fingerprint (output, device, workers, progress) may change.
    assert main(["train-cifar", *TINY, "--out", str(out), "--channels-last"]) == 0
    assert _metrics(out) == _metrics(full_run)
    before = (out / "metrics.json").read_text()
    code = main(["train-cifar", *TINY, "--out", str(out), "--learning-rate", "0.05"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--learning-rate" in err
    assert (out / "metrics.json").read_text() == before


def test_speed_options_bf16_and_channels_last(tmp_path):
    """Each speed option runs and keeps the losses finite on the CPU.  (Together, on this CPU, one
    batch of this tiny run gets non-finite bf16 gradients from the channels_last convolution
    kernels; on CUDA they are on by default and checked by benchmarks/gpu_check.sh.)"""
    args = [a if a != "2" else "1" for a in TINY]  # one epoch of one step
    for name, extra in (
        ("bf16", ["--amp", "bf16", "--no-channels-last"]),
        ("cl", ["--amp", "none", "--channels-last"]),
    ):
        out = tmp_path / name
        assert main(["train-cifar", *args, "--out", str(out), *extra]) == 0
        m = json.loads((out / "metrics.json").read_text())
        assert math.isfinite(m["test_loss"]) and math.isfinite(m["train_loss"]), name
    assert yaml_load(tmp_path / "bf16" / "config.yaml")["amp"] == "bf16"
    assert yaml_load(tmp_path / "cl" / "config.yaml")["channels_last"] is True


def yaml_load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


@pytest.mark.slow
def test_ddp_two_processes_resume_a_single_process_checkpoint(full_run, interrupted_run, tmp_path):
    """torchrun, 2 CPU processes (gloo): resumes a 1-process checkpoint (world size is not in
    the fingerprint), keeps the global batch, writes the same metrics format."""
    out = tmp_path / "run"
    shutil.copytree(interrupted_run, out)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "sd_darts",
        "train-cifar",
        *TINY,
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["batch_size"] == 16
    assert set(m) == set(json.loads((full_run / "metrics.json").read_text()))
    history = _history(out)
    assert len(history) == 2 and history[0] == _history(full_run)[0]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["world_size"] == 2
    assert proc.stdout.count("train-cifar: test error") == 1  # rank 0 reports once


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--epochs", "0"], "--epochs"),
        (["--genotype", "NOT_A_GENOTYPE"], "NOT_A_GENOTYPE"),
        (["--image-size", "16"], "--auxiliary-weight"),
        (["--init-channels", "5"], "--init-channels"),
        (["--drop-path-prob", "1.0"], "--drop-path-prob"),
        (["--amp", "fp8"], "amp"),
    ],
)
def test_bad_settings_exit_2_and_write_nothing(tmp_path, capsys, extra, fragment):
    out = tmp_path / "run"
    assert main(["train-cifar", *TINY, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err
    assert not out.exists()


def test_bad_out_params_and_world_size(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train-cifar", *TINY, "--out", str(blocker / "run")]) == 2
    assert "is a file" in capsys.readouterr().err

    params = tmp_path / "params.yaml"
    params.write_text("train_cifar:\n  epochs: 3\n  learning_rat: 0.1\n")
    out = tmp_path / "run"
    assert main(["train-cifar", "--params", str(params), *TINY, "--out", str(out)]) == 2
    assert "learning_rat" in capsys.readouterr().err
    params.write_text("train_imagenet:\n  epochs: 3\n")
    assert main(["train-cifar", "--params", str(params), *TINY, "--out", str(out)]) == 2
    assert "train_cifar" in capsys.readouterr().err

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    assert main(["train-cifar", *TINY, "--out", str(out)]) == 2
    assert "not divisible" in capsys.readouterr().err
    assert not out.exists()


def test_params_file_section_sets_values(tmp_path):
    import argparse

    from sd_darts.commands import train_imagenet

    params = tmp_path / "params.yaml"
    params.write_text("train_imagenet:\n  epochs: 3\n  label_smoothing: 0.2\n")
    parser = argparse.ArgumentParser()
    train_imagenet.register(parser)
    args = parser.parse_args(["--params", str(params), "--epochs", "4"])
    cfg = cfgmod.resolve(TrainImageNetConfig, "train_imagenet", args)
    assert cfg.epochs == 4 and cfg.label_smoothing == 0.2  # flags override the file


def test_genotype_json_from_a_search_loads_nb201_refused(tmp_path):
    from sd_darts.errors import UserError
    from sd_darts.evaluation.recipes import resolve_genotype
    from sd_darts.genotypes import SD_DARTS, NB201Genotype, save_genotype

    save_genotype(tmp_path / "darts" / "genotype.json", SD_DARTS)
    assert resolve_genotype(str(tmp_path / "darts" / "genotype.json")) == SD_DARTS
    save_genotype(
        tmp_path / "nb201.json",
        NB201Genotype.from_arch_str(
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
        ),
    )
    with pytest.raises(UserError, match="DARTS"):
        resolve_genotype(str(tmp_path / "nb201.json"))
