"""Stacked seeds (``sd-darts search --seeds``): the group commit of the seeds' checkpoints, the
memory check and seed cap, and the ``--out`` template."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sd_darts.cli import main
from sd_darts.search.config import MAX_SEEDS, SearchConfig
from sd_darts.search.runs import seed_configs, template_problem
from sd_darts.utils import checkpoint as checkpoint_mod
from sd_darts.utils import config, files
from sd_darts.utils import memory as memory_mod

TINY = [
    "search",
    "--dataset",
    "digits",
    "--image-size",
    "16",
    "--init-channels",
    "4",
    "--layers",
    "3",
    "--batch-size",
    "8",
    "--limit-samples",
    "32",
    "--device",
    "cpu",
    "--fast-step",
    "--impl",
    "fused",
    "--primitives",
    "none,skip_connect,max_pool_3x3,dil_conv_3x3",
    "--epochs",
    "2",
    "--warmup-epochs",
    "1",
    "--window",
    "1",
]
SEEDS = (0, 1, 2)


def stacked(out: str, *extra: str) -> int:
    return main([*TINY, "--seeds", ",".join(map(str, SEEDS)), "--out", out, *extra])


def folders(template: Path) -> list[Path]:
    return [Path(str(template).format(seed=s)) for s in SEEDS]


def outputs(folder: Path) -> dict:
    """Everything a finished seed's folder reports: genotypes, alphas, summary, DVCLive metrics."""
    summary = json.loads((folder / "summary.json").read_text())
    summary.pop("device")
    metrics = {p.relative_to(folder).as_posix(): p.read_text() for p in sorted((folder / "dvclive").rglob("*.tsv"))}
    metrics["metrics.json"] = (folder / "dvclive" / "metrics.json").read_text()
    return {
        "genotype": (folder / "genotype.json").read_text(),
        "genotypes": [p.read_text() for p in sorted((folder / "genotypes").iterdir())],
        "alphas": [torch.load(p, weights_only=True) for p in sorted((folder / "alphas").iterdir())],
        "summary": summary,
        "metrics": metrics,
    }


def same(a: dict, b: dict) -> bool:
    tensors_equal = all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a["alphas"], b["alphas"])
    )
    rest = ("genotype", "genotypes", "summary")
    return (
        tensors_equal
        and len(a["alphas"]) == len(b["alphas"])
        and all(a[k] == b[k] for k in rest)
        and (_numbers(a["metrics"]) == _numbers(b["metrics"]))
    )


def _numbers(metrics: dict) -> dict:
    """The metric files without the wall-clock columns (epoch_seconds, timestamps)."""
    out = {}
    for name, text in metrics.items():
        if "epoch_seconds" in name:
            continue
        if name == "metrics.json":
            data = json.loads(text)
            data.pop("epoch_seconds", None)
            out[name] = data
        else:
            out[name] = [line.split("\t")[1:] for line in text.splitlines()]  # drop the timestamp column
    return out


def true_epochs(template: Path) -> list[int]:
    """The epoch each seed's checkpoint.pt holds (0: none), read from the files."""
    held = []
    for folder in folders(template):
        path = folder / "checkpoint.pt"
        held.append(torch.load(path, weights_only=True)["epoch"] + 1 if path.exists() else 0)
    return held


def test_an_interruption_at_every_point_of_the_group_commit_resumes_to_the_uninterrupted_end(
    tmp_path, monkeypatch, capsys
):
    """A 3-seed run stopped at the end of its last epoch (the first one committed) before each of the 3 writes of
    checkpoint.pt.next, before each of the 3 renames and after the last: the one-line message names
    the epochs the checkpoints hold, and the rerun ends exactly where the uninterrupted run does
    (genotypes, alphas, summary, DVCLive metrics).  tests/search/test_loop.py resumes training after a
    finished commit."""
    epochs = ("--epochs", "2")
    reference = tmp_path / "ref" / "s{seed}"
    assert stacked(str(reference), *epochs) == 0
    expected = [outputs(f) for f in folders(reference)]
    real = {name: getattr(checkpoint_mod, name) for name in ("save_checkpoint", "commit_file")}
    per_commit = 2 * len(SEEDS)  # a .next per seed, then a rename per seed
    for point in range(per_commit + 1):
        calls = []
        cut = per_commit + point  # the first epoch commits in full

        def hooked(name, *args, cut=cut, calls=calls):
            if len(calls) == cut:
                raise KeyboardInterrupt
            calls.append(name)
            real[name](*args)
            if len(calls) == cut == 2 * per_commit:
                raise KeyboardInterrupt

        for name in real:
            monkeypatch.setattr(checkpoint_mod, name, lambda *a, name=name, hooked=hooked: hooked(name, *a))
        template = tmp_path / f"cut{point}" / "s{seed}"
        capsys.readouterr()
        assert stacked(str(template), *epochs) == 130, point
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        held = true_epochs(template)
        assert sorted(set(held)) == ([1, 2] if 3 < point < 6 else [1 if point < 6 else 2]), (point, held)
        if len(set(held)) > 1:
            names = ", ".join(f"{d}/2 (seed {s})" for s, d in zip(SEEDS, held))
            assert f"; the seeds' checkpoint.pt hold epochs {names};" in err, (point, err)
        else:
            assert f"; each seed's checkpoint.pt holds epoch {held[0]}/2;" in err, (point, err)
        assert ("epoch 2/2 is written for every seed and the rerun commits it" in err) == (3 <= point < 6), err
        for name, fn in real.items():
            monkeypatch.setattr(checkpoint_mod, name, fn)
        assert stacked(str(template), *epochs) == 0, (point, capsys.readouterr().err)
        for folder, want in zip(folders(template), expected):
            assert not (folder / "checkpoint.pt.next").exists()
            assert same(outputs(folder), want), (point, folder)


def _with_epoch(path: Path, epoch: int, to: Path) -> None:
    """Write ``path``'s checkpoint to ``to`` as if it held ``epoch`` (checksum made anew)."""
    ckpt = dict(torch.load(path, weights_only=True), epoch=epoch)
    ckpt["checksum"] = checkpoint_mod.checksum(ckpt)
    torch.save(ckpt, to)


def test_start_up_discards_a_partial_phase_one_and_finishes_phase_two(tmp_path):
    """The files as a kill -9 leaves them: some seeds' .next (phase 1 cut) are removed and the
    committed epoch is resumed; every seed's epoch written (phase 2 cut) is committed.  Nothing is
    touched before settle()."""
    template = tmp_path / "run" / "s{seed}"
    assert stacked(str(template)) == 0
    outs = folders(template)
    cfgs = [config.build(SearchConfig, [(yaml.safe_load((f / "config.yaml").read_text()), "config")]) for f in outs]
    required = {"epoch": int, "model": dict, "w_optimizer": dict, "a_optimizer": dict, "rng": dict, "history": list}
    required["teacher_cache"] = dict
    paths = [f / "checkpoint.pt" for f in outs]
    nexts = [checkpoint_mod.next_path(p) for p in paths]
    _with_epoch(paths[0], 1, nexts[0])  # phase 1 cut: only seed 0 wrote epoch index 1
    for p in paths:
        _with_epoch(p, 0, p)
    files.remove_stale_temporaries(outs[0])  # a .next is no stale temporary
    group = checkpoint_mod.CheckpointGroup(paths, "search")
    assert [c["epoch"] for c in group.load(cfgs, required)] == [0, 0, 0]
    assert nexts[0].exists()
    group.settle()
    assert not nexts[0].exists() and true_epochs(template) == [1, 1, 1]

    _with_epoch(paths[0], 1, paths[0])  # phase 2 cut: seed 0 renamed already, seeds 1 and 2 not
    for p, n in zip(paths[1:], nexts[1:]):
        _with_epoch(p, 1, n)
    group = checkpoint_mod.CheckpointGroup(paths, "search")
    assert [c["epoch"] for c in group.load(cfgs, required)] == [1, 1, 1]
    assert true_epochs(template) == [2, 1, 1]
    group.settle()
    assert true_epochs(template) == [2, 2, 2] and not any(n.exists() for n in nexts)


@pytest.mark.parametrize(
    ("damage", "named"),
    [("epoch", "different epochs (seed 0: 2, seed 1: 1, seed 2: 2)"), ("missing", "some (seeds 1) do not")],
)
def test_seeds_left_at_different_epochs_are_refused_with_a_fix_that_works(tmp_path, capsys, damage, named):
    """Files edited by hand (no group commit leaves them so): one line, and the advice is not the
    impossible one-by-one resume."""
    template = tmp_path / "run" / "s{seed}"
    assert stacked(str(template)) == 0
    path = folders(template)[1] / "checkpoint.pt"
    if damage == "epoch":
        _with_epoch(path, 0, path)
    else:
        path.unlink()
    capsys.readouterr()
    assert stacked(str(template)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err and "one by one" not in err, err
    assert "delete their checkpoint.pt to start afresh" in err


def test_stacked_seeds_memory_is_checked_times_s_before_any_folder_exists(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory_mod, "available_bytes", lambda device: 1)
    big = ["--batch-size", "2048", "--init-channels", "64"]
    single = main([*TINY, *big, "--seed", "0", "--out", str(tmp_path / "one")])
    one_err = capsys.readouterr().err.strip()
    assert single == 2 and "this search would need about" in one_err, one_err
    assert stacked(str(tmp_path / "runs" / "s{seed}"), *big) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "these 3 stacked seeds would need about" in err and "fewer --seeds" in err
    need_one = float(re.search(r"need about ([\d.]+) GiB", one_err).group(1))
    need_all = float(re.search(r"need about ([\d.]+) GiB", err).group(1))
    assert need_one > 1 and abs(need_all - 3 * need_one) <= 0.2, (need_one, need_all)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "one").exists()


@pytest.mark.parametrize("count", [MAX_SEEDS + 1, 100_000])
def test_more_seeds_than_the_cap_are_refused_in_one_line(tmp_path, capsys, count):
    assert MAX_SEEDS == 64
    seeds = ",".join(map(str, range(count)))
    assert main([*TINY, "--seeds", seeds, "--out", str(tmp_path / "s{seed}")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--seeds: lists {count} values, at most 64 are allowed" in err, err[:300]
    assert not any(tmp_path.iterdir())


def test_the_seed_cap_is_in_the_help_text(capsys):
    assert main(["search", "--help"]) == 0
    assert "stacked in one process, at most 64" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("a{seed}{x}", "'{x}'"),
        ("a{0}{seed}", "'{0}'"),
        ("a{}{seed}", "'{}'"),
        ("a{seed}{", "not a valid template"),
        ("a}{seed}", "not a valid template"),
        ("a{seed!r}", "'{seed!r}'"),
        ("a{seed:>{w}}", "'{seed:>{w}}'"),
        ("a{seed:03d}", "'{seed:03d}'"),
        ("a{seed.real}", "'{seed.real}'"),
        ("a{seed[0]}", "'{seed[0]}'"),
        ("a{{seed}}", "must contain {seed}"),
    ],
)
def test_bad_out_templates_are_one_line(tmp_path, capsys, template, named):
    assert stacked(str(tmp_path / "runs" / template)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sd-darts search: error: --out: ") and named in err, err
    assert not (tmp_path / "runs").exists()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="{}seda!r:>0x/.[]", max_size=14))
def test_any_template_is_refused_in_words_or_formats_to_one_folder_per_seed(template):
    problem = template_problem(template)
    if problem is None:
        names = [name for _t, name, _s, _c in string.Formatter().parse(template) if name is not None]
        assert names and set(names) == {"seed"}
        assert template.format(seed=1) != template.format(seed=22)
    else:
        assert "\n" not in problem


def test_literal_braces_are_allowed():
    settings_ = {"seeds": [0, 1], "fast_step": True, "impl": "fused", "out": "r{{x}}/s{seed}"}
    cfg = config.build(SearchConfig, [(settings_, None)])
    assert [c.out for c in seed_configs(cfg)] == ["r{x}/s0", "r{x}/s1"]


def test_seeds_resolving_to_one_folder_are_refused_up_front(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert stacked(str(runs / "q{seed}" / ".." / "same")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gives seeds 0 and 1 one folder" in err and "in use" not in err, err
    assert not runs.exists()
    (runs / "sl0").mkdir(parents=True)
    (runs / "sl1").symlink_to("sl0")
    (runs / "sl2").mkdir()
    assert stacked(str(runs / "sl{seed}")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gives seeds 0 and 1 one folder" in err and "in use" not in err, err
    assert sorted(p.name for p in runs.iterdir()) == ["sl0", "sl1", "sl2"] and not any((runs / "sl0").iterdir())
    assert not any((runs / "sl2").iterdir())
