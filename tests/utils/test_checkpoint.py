"""Damaged checkpoints: unreadable, altered, incomplete or inconsistent checkpoints are
refused in one line before anything in the run folder is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from search_cli import TINY_SEARCH, assert_one_line_refusal, run_cli, snapshot

from sd_darts.cli import main


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("done") / "run"
    assert main(["search", *TINY_SEARCH, "--out", str(out), "--max-steps-per-epoch", "1"]) == 0
    return out


def damaged_copies(run: Path, tmp_path: Path):
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)

    def variant(name, edit):
        folder = tmp_path / name
        folder.mkdir()
        for f in ("config.yaml",):
            (folder / f).write_bytes((run / f).read_bytes())
        edit(folder / "checkpoint.pt", {k: v for k, v in ckpt.items()})
        return folder

    def save_raw(path, payload):
        torch.save(payload, path)

    def resign(path, payload):
        from sd_darts.utils.checkpoint import checksum

        payload["checksum"] = checksum(payload)
        torch.save(payload, path)

    yield variant("text", lambda p, c: p.write_text("not a checkpoint"))
    yield variant(
        "flipped",
        lambda p, c: save_raw(
            p, {**c, "model": {k: v + 1 if v.is_floating_point() else v for k, v in c["model"].items()}}
        ),
    )
    yield variant("missing", lambda p, c: resign(p, {k: v for k, v in c.items() if k != "w_optimizer"}))
    yield variant("negative", lambda p, c: resign(p, {**c, "epoch": -5}))
    yield variant("mismatch", lambda p, c: resign(p, {**c, "model": {k + "_x": v for k, v in c["model"].items()}}))
    yield variant("rng", lambda p, c: resign(p, {**c, "rng": {"torch": torch.zeros(3)}}))


def test_damaged_checkpoints_are_refused_before_the_folder_is_touched(finished_run, tmp_path, capsys):
    for folder in damaged_copies(finished_run, tmp_path):
        before = snapshot(folder)
        code, err = run_cli(
            capsys, "search", *TINY_SEARCH, "--out", str(folder), "--max-steps-per-epoch", "1", "--epochs", "3"
        )
        assert_one_line_refusal(code, err, "checkpoint")
        assert snapshot(folder) == before, folder.name
