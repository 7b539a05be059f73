"""End-to-end tests of ``sd-darts search`` on the embedded digits dataset (tiny supernets)."""

from __future__ import annotations

import csv
import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from search_cli import TINY_SEARCH, run_cli, spawn_search, wait_for

from sd_darts.cli import main
from sd_darts.search import loop as search_mod
from sd_darts.utils import checkpoint as checkpoint_mod

TINY = [
    "--dataset",
    "digits",
    "--image-size",
    "16",
    "--init-channels",
    "4",
    "--layers",
    "5",
    "--batch-size",
    "8",
    "--limit-samples",
    "32",
    "--device",
    "cpu",
    "--seed",
    "3",
]


def search(out: Path, *extra: str) -> int:
    return main(["search", *TINY, "--out", str(out), *extra])


def final_alphas(out: Path, epochs: int) -> dict[str, torch.Tensor]:
    return torch.load(out / "alphas" / f"epoch_{epochs - 1:03d}.pt", weights_only=True)


def metric_series(out: Path, name: str) -> list[float]:
    path = out / "dvclive" / "plots" / "metrics" / f"{name}.tsv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [float(r[name.split("/")[-1]]) for r in rows]


def test_search_writes_the_contracted_outputs(tmp_path):
    out = tmp_path / "run"
    assert search(out, "--epochs", "2", "--warmup-epochs", "1", "--window", "1") == 0
    for name in ("genotype.json", "checkpoint.pt", "config.yaml", "summary.json", "dvclive/metrics.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "genotypes").iterdir()) == ["epoch_000.json", "epoch_001.json"]
    genotype = json.loads((out / "genotype.json").read_text())
    assert genotype["space"] == "darts" and len(genotype["normal"]) == 8 and len(genotype["reduce"]) == 8
    alphas = final_alphas(out, 2)
    assert {tuple(v.shape) for v in alphas.values()} == {(14, 8)} and len(alphas) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "sd-darts" and summary["genotype"] == genotype
    metrics = json.loads((out / "dvclive" / "metrics.json").read_text())
    for key in ("loss", "acc"):
        assert key in metrics["train"] and key in metrics["valid"]
    for key in ("kd_loss", "teacher_coverage", "lr", "num_skip_connect", "epoch_seconds"):
        assert key in metrics
    # Two epochs, cosine schedule: the first epoch runs at the initial learning rate.
    assert metric_series(out, "lr")[0] == pytest.approx(0.025)
    config = (out / "config.yaml").read_text()
    assert "sd_lambda: 1.0" in config and "window: 1" in config and "init_channels: 4" in config


def test_warmup_gates_the_kd_term(tmp_path):
    out = tmp_path / "run"
    assert search(out, "--epochs", "3", "--warmup-epochs", "2", "--window", "1") == 0
    kd = metric_series(out, "kd_loss")
    assert kd[0] == 0.0 and kd[1] == 0.0, "no KD term during the warm-up epochs"
    assert kd[2] > 0.0, "KD term active from epoch xi+1 on"
    coverage = metric_series(out, "teacher_coverage")
    assert coverage[0] == 0.0  # recording starts at epoch xi - K = 1
    assert coverage[1] > 0.0


def test_lambda_zero_is_darts_bit_for_bit(tmp_path):
    common = ("--epochs", "2", "--warmup-epochs", "0", "--window", "1")
    assert search(tmp_path / "darts", "--method", "darts", *common) == 0
    assert search(tmp_path / "sd0", "--method", "sd-darts", "--sd-lambda", "0", *common) == 0
    assert search(tmp_path / "sd1", "--method", "sd-darts", "--sd-lambda", "1", *common) == 0
    a, b, c = (final_alphas(tmp_path / d, 2) for d in ("darts", "sd0", "sd1"))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert any(not torch.equal(a[n], c[n]) for n in a), "lambda=1 must change the trajectory"
    wa = torch.load(tmp_path / "darts" / "checkpoint.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "sd0" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, monkeypatch):
    args = ("--epochs", "3", "--warmup-epochs", "1", "--window", "2")
    assert search(tmp_path / "full", *args) == 0

    real_save = checkpoint_mod.save_checkpoint

    def save_then_die(path, cfg, kind, state):
        real_save(path, cfg, kind, state)
        if state["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_mod, "save_checkpoint", save_then_die)
    assert search(tmp_path / "resumed", *args) == 130
    assert not (tmp_path / "resumed" / "genotype.json").exists()
    monkeypatch.setattr(checkpoint_mod, "save_checkpoint", real_save)
    assert search(tmp_path / "resumed", *args) == 0

    a, b = final_alphas(tmp_path / "full", 3), final_alphas(tmp_path / "resumed", 3)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert (tmp_path / "full" / "genotype.json").read_text() == (tmp_path / "resumed" / "genotype.json").read_text()
    assert metric_series(tmp_path / "full", "kd_loss") == metric_series(tmp_path / "resumed", "kd_loss")


def test_checkpoint_from_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert search(out, "--epochs", "2", "--warmup-epochs", "1", "--max-steps-per-epoch", "1") == 0
    capsys.readouterr()
    code = search(out, "--epochs", "2", "--warmup-epochs", "1", "--max-steps-per-epoch", "1", "--sd-lambda", "0.5")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "--sd-lambda" in err and "checkpoint" in err


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--sd-lambda", "-1"], "--sd-lambda"),
        (["--window", "0"], "--window"),
        (["--warmup-epochs", "5", "--epochs", "5"], "--warmup-epochs"),
        (["--dataset", "imagenet"], "dataset"),
        (["--method", "pc-darts"], "method"),
        (["--space", "nasbench301"], "space"),
        (["--batch-size", "0"], "--batch-size"),
        (["--primitives", "none,sep_conv_3x3,conv_7x1_1x7"], "conv_7x1_1x7"),
    ],
)
def test_bad_settings_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, flags, needle):
    out = tmp_path / "run"
    code = main(["search", "--dataset", "digits", "--out", str(out), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert needle in err
    assert not out.exists()


def test_argparse_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["search", "--epochs", "abc", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--epochs" in err


def test_unwritable_out_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = search(blocker / "run", "--epochs", "1", "--warmup-epochs", "0")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--out" in err


def test_params_file_section_and_flag_override(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("search:\n  epochs: 1\n  warmup_epochs: 0\n  window: 1\n  sd_lambda: 0.5\n")
    out = tmp_path / "run"
    assert search(out, "--params", str(params), "--sd-lambda", "0.25") == 0
    config = (out / "config.yaml").read_text()
    assert "sd_lambda: 0.25" in config and "epochs: 1" in config

    params.write_text("search:\n  epochs: 1\n  warmup_epoch: 0\n")
    code = search(tmp_path / "other", "--params", str(params))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "search.warmup_epoch" in err and len(err.splitlines()) == 1
    params.write_text("search:\n  epochs: one\n")
    code = search(tmp_path / "other", "--params", str(params))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "search.epochs" in err and "integer" in err
    assert not (tmp_path / "other").exists()


def test_search_over_a_subset_of_ops(tmp_path):
    out = tmp_path / "run"
    ops = "none,max_pool_3x3,skip_connect,sep_conv_3x3"
    assert search(out, "--epochs", "1", "--warmup-epochs", "0", "--window", "1", "--primitives", ops) == 0
    alphas = final_alphas(out, 1)
    assert {tuple(v.shape) for v in alphas.values()} == {(14, 4)}
    genotype = json.loads((out / "genotype.json").read_text())
    used = {op for op, _ in genotype["normal"] + genotype["reduce"]}
    assert used <= {"max_pool_3x3", "skip_connect", "sep_conv_3x3"}


def test_hessian_tracking_is_logged_and_leaves_the_trajectory_unchanged(tmp_path):
    args = ("--epochs", "2", "--warmup-epochs", "1", "--window", "1")
    assert search(tmp_path / "plain", *args) == 0
    assert (
        search(tmp_path / "tracked", *args, "--hessian-every", "1", "--hessian-batch-size", "8", "--hessian-iters", "8")
        == 0
    )
    eig = metric_series(tmp_path / "tracked", "hessian/eigenvalue")
    assert len(eig) == 2 and all(torch.isfinite(torch.tensor(eig)))
    a, b = final_alphas(tmp_path / "plain", 2), final_alphas(tmp_path / "tracked", 2)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_second_order_search_with_self_distillation_runs(tmp_path):
    out = tmp_path / "run"
    assert (
        search(out, "--epochs", "2", "--warmup-epochs", "1", "--window", "1", "--unrolled", "--limit-samples", "16")
        == 0
    )
    kd = metric_series(out, "kd_loss")
    assert kd[0] == 0.0 and kd[1] > 0.0
    assert "unrolled: true" in (out / "config.yaml").read_text()


def test_validation_cross_entropy_and_objective_are_logged_apart(tmp_path):
    """valid/loss is the plain cross-entropy (comparable between DARTS and SD-DARTS);
    valid/objective is what the alpha step minimised: + λ·KD once distillation is on."""
    out = tmp_path / "sd"
    assert search(out, "--epochs", "3", "--warmup-epochs", "1", "--window", "1", "--sd-lambda", "2") == 0
    ce, objective, kd = (metric_series(out, n) for n in ("valid/loss", "valid/objective", "kd_loss"))
    assert objective[0] == pytest.approx(ce[0])  # warm-up: no KD term
    assert all(o > c for o, c in zip(objective[1:], ce[1:])) and all(k > 0 for k in kd[1:])
    train_ce, train_objective = metric_series(out, "train/loss"), metric_series(out, "train/objective")
    assert train_objective[0] == pytest.approx(train_ce[0]) and train_objective[2] > train_ce[2]
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["supernet_valid_acc"] <= 100.0 and summary["supernet_valid_loss"] > 0


def test_the_library_runs_without_dvc_and_dvclive(tmp_path):
    """dvc and dvclive are the pipeline extra: a plain install imports and searches without them."""

    out = tmp_path / "run"
    script = (
        "import sys\n"
        "sys.modules['dvclive'] = None; sys.modules['dvc'] = None  # as if not installed\n"
        "from sd_darts.cli import main\n"
        f"sys.exit(main({['search', *TINY, '--out', str(out), '--epochs', '1', '--warmup-epochs', '0', '--max-steps-per-epoch', '1']!r}))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""}
    )
    assert res.returncode == 0, res.stderr
    assert "dvclive is not installed" in res.stderr
    assert (out / "genotype.json").is_file() and (out / "summary.json").is_file() and not (out / "dvclive").exists()


def test_fast_step_searches_and_resumes_exactly(tmp_path, monkeypatch):
    """--fast-step --impl fused: the capturable step on device-resident batches writes the same
    outputs as the reference loop and resumes bit for bit after an interruption."""
    fast = ("--fast-step", "--impl", "fused", "--epochs", "3", "--warmup-epochs", "1", "--window", "1")
    full = tmp_path / "full"
    assert search(full, *fast) == 0
    for name in ("genotype.json", "summary.json", "checkpoint.pt", "config.yaml"):
        assert (full / name).is_file(), name
    assert metric_series(full, "kd_loss")[0] == 0 and metric_series(full, "kd_loss")[2] > 0
    assert metric_series(full, "valid/objective")[2] > metric_series(full, "valid/loss")[2]

    real_save = checkpoint_mod.save_checkpoint

    def save_then_die(path, cfg, kind, state):
        real_save(path, cfg, kind, state)
        if state["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_mod, "save_checkpoint", save_then_die)
    assert search(tmp_path / "resumed", *fast) == 130
    monkeypatch.setattr(checkpoint_mod, "save_checkpoint", real_save)
    assert search(tmp_path / "resumed", *fast) == 0
    a, b = final_alphas(full, 3), final_alphas(tmp_path / "resumed", 3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (full / "genotype.json").read_bytes() == (tmp_path / "resumed" / "genotype.json").read_bytes()
    # a reference-step checkpoint is never resumed by the fast step
    assert search(full, "--impl", "fused", "--epochs", "3", "--warmup-epochs", "1", "--window", "1") == 2


def test_fast_step_epochs_visit_every_sample_as_the_reference_loaders_do(tmp_path):
    """--batch-size 6 over halves of 16: batches 6, 6, 4.  The fast step keeps the short batch
    (DARTS's loaders do not drop it): the reference path's indices, batch for batch, on both
    halves, and every sample recorded in the teacher cache (coverage 1.0)."""
    fast = ("--fast-step", "--impl", "fused", "--epochs", "2", "--warmup-epochs", "1", "--window", "1")
    assert search(tmp_path / "run", *fast, "--batch-size", "6") == 0
    assert metric_series(tmp_path / "run", "teacher_coverage") == [1.0, 1.0]
    cfg = search_mod.SearchConfig(
        dataset="digits",
        image_size=16,
        init_channels=4,
        layers=5,
        batch_size=6,
        limit_samples=32,
        device="cpu",
        seed=3,
        epochs=2,
        warmup_epochs=1,
        window=1,
        impl="fused",
        out=str(tmp_path / "unused"),
    )
    cfg.validate()
    reference = search_mod.Search(cfg)
    fast_run = search_mod.Search(dataclasses.replace(cfg, fast_step=True))
    [(train, valid)] = fast_run.loaders.pairs
    for epoch in range(2):
        ref_train, ref_valid = reference.loaders.loaders(epoch)
        want = [idx for _, _, idx in ref_train]
        assert [len(i) for i in want] == [6, 6, 4]
        assert [idx.tolist() for _, _, idx in train.batches(epoch)] == [i.tolist() for i in want]
        stream = valid.stream(epoch)
        for _ in range(len(want) + 1):  # into the second pass
            assert next(stream)[2].tolist() == next(ref_valid)[2].tolist()


@pytest.mark.parametrize(
    "extra, named",
    [
        (("--fast-step", "--unrolled"), "--fast-step"),
        (("--amp", "bf16"), "--amp"),
        (("--compile", "step"), "--compile"),
        (("--fast-step", "--cuda-graph"), "--cuda-graph"),
    ],
)
def test_fast_step_options_are_checked(tmp_path, capsys, extra, named):
    assert search(tmp_path / "run", "--epochs", "1", "--warmup-epochs", "0", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err
    assert not (tmp_path / "run").exists()


def test_stacked_seeds_write_ordinary_run_folders_that_follow_their_single_seed_runs(tmp_path, monkeypatch):
    """--seeds 0,1: two searches in one stacked model; each seed's folder is an ordinary run folder
    whose trajectory is its own --fast-step run's (float32: Adam turns rounding noise on
    near-zero alpha gradients into steps of at most lr, so alphas agree to 2·lr·steps)."""
    common = ("--fast-step", "--impl", "fused", "--epochs", "2", "--warmup-epochs", "1", "--window", "1")
    stacked = tmp_path / "stacked" / "s{seed}"
    assert main(["search", *TINY[:-2], "--seeds", "0,1", "--out", str(stacked), *common]) == 0
    for seed in (0, 1):
        single = tmp_path / f"single{seed}"
        assert main(["search", *TINY[:-2], "--seed", str(seed), "--out", str(single), *common]) == 0
        folder = Path(str(stacked).format(seed=seed))
        assert yaml_load(folder / "config.yaml")["seed"] == seed
        a, b = final_alphas(folder, 2), final_alphas(single, 2)
        steps = 2 * 2  # epochs x steps per epoch (32 samples: 16 train, batch 8)
        assert all(torch.allclose(a[k], b[k], atol=2 * 3e-4 * steps) for k in a)
        sa, sb = (json.loads((f / "summary.json").read_text()) for f in (folder, single))
        assert sa["seed"] == sb["seed"] == seed and sa["stacked_with_seeds"] == [0, 1]
        assert abs(sa["final_valid_acc"] - sb["final_valid_acc"]) <= 100.0 / 16 + 1e-9  # at most one image of 16

    # an interrupted stacked run resumes all seeds to the same end
    real_save = checkpoint_mod.save_checkpoint
    calls = []

    def save_then_die(path, cfg, kind, state):
        real_save(path, cfg, kind, state)
        calls.append(cfg.seed)
        if len(calls) == 2:  # both seeds wrote epoch 0's checkpoint.pt.next, none is committed yet
            raise KeyboardInterrupt

    resumed = tmp_path / "resumed" / "s{seed}"
    monkeypatch.setattr(checkpoint_mod, "save_checkpoint", save_then_die)
    assert main(["search", *TINY[:-2], "--seeds", "0,1", "--out", str(resumed), *common]) == 130
    monkeypatch.setattr(checkpoint_mod, "save_checkpoint", real_save)
    assert main(["search", *TINY[:-2], "--seeds", "0,1", "--out", str(resumed), *common]) == 0
    for seed in (0, 1):
        a = final_alphas(Path(str(stacked).format(seed=seed)), 2)
        b = final_alphas(Path(str(resumed).format(seed=seed)), 2)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_stacked_seeds_need_a_folder_per_seed(tmp_path, capsys):
    assert (
        main(["search", *TINY[:-2], "--seeds", "0,1", "--fast-step", "--impl", "fused", "--out", str(tmp_path / "run")])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "{seed}" in err
    assert not (tmp_path / "run").exists()


def yaml_load(path):
    import yaml

    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------------------- bad input and interruptions
def test_primitives_without_none(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(
        capsys,
        "search",
        *TINY_SEARCH,
        "--out",
        str(out),
        "--primitives",
        "skip_connect,sep_conv_3x3",
        "--max-steps-per-epoch",
        "1",
    )
    assert code == 0, err
    genotype = json.loads((out / "genotype.json").read_text())
    assert {op for op, _ in genotype["normal"]} <= {"skip_connect", "sep_conv_3x3"}


def test_a_second_process_on_a_busy_run_folder_stops_with_one_line(tmp_path):
    out = tmp_path / "run"
    first = spawn_search(out, "--epochs", "30", "--warmup-epochs", "1")
    try:
        wait_for(out / "config.yaml")
        second = spawn_search(out, "--epochs", "30", "--warmup-epochs", "1")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert "in use by another running process" in err and len(err.strip().splitlines()) == 1, err
    finally:
        first.kill()
        first.wait()
    # The kernel dropped the killed process's lock: the folder can be resumed at once.
    again = spawn_search(out, "--epochs", "1", "--warmup-epochs", "0")
    _, err = again.communicate(timeout=300)
    assert again.returncode != 2 or "in use" not in err, err


def test_sigterm_says_what_was_saved(tmp_path):
    out = tmp_path / "run"
    proc = spawn_search(out, "--epochs", "50", "--warmup-epochs", "1")
    try:
        wait_for(out / "checkpoint.pt")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert "stopped by SIGTERM" in err and "checkpoint.pt holds epoch" in err and "rerun the same command" in err


def test_results_do_not_depend_on_the_number_of_data_workers(tmp_path, capsys):
    outs = []
    for workers in ("0", "2"):
        out = tmp_path / f"w{workers}"
        code, err = run_cli(
            capsys,
            "search",
            *TINY_SEARCH,
            "--out",
            str(out),
            "--epochs",
            "1",
            "--warmup-epochs",
            "0",
            "--num-workers",
            workers,
        )
        assert code == 0, err
        outs.append(out)
    a, b = (torch.load(o / "alphas" / "epoch_000.pt", weights_only=True) for o in outs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (outs[0] / "genotype.json").read_bytes() == (outs[1] / "genotype.json").read_bytes()
