"""``sd-darts search|train-cifar --params FILE`` take the dataset from FILE's ``data:`` section."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from data_fixtures import FOLDER, patch_md5_tables, write_fake_cifar
from support import ROOT as REPO

from sd_darts.cli import build_parser, main
from sd_darts.evaluation.recipes import TrainCifarConfig, TrainImageNetConfig
from sd_darts.experiment.settings import command_data
from sd_darts.search.config import SearchConfig
from sd_darts.utils import config


def params_with_data(tmp_path: Path, **data) -> Path:
    """The paper's params.yaml with its ``data:`` section changed."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def resolved(cls, section: str, argv: list[str]):
    args = build_parser().parse_args(argv)
    return config.resolve(cls, section, args, command_data(args.params, section))


def test_data_section_under_the_command_section_and_flags(tmp_path):
    params = params_with_data(tmp_path, root=str(tmp_path / "cifar"), download=False, dataset="digits")
    for space, section in (("nb201", "nb201"), ("darts", "search")):
        cfg = resolved(SearchConfig, section, ["search", "--space", space, "--params", str(params)])
        assert (cfg.dataset, cfg.data_root, cfg.download) == ("digits", str(tmp_path / "cifar"), False)
    cfg = resolved(SearchConfig, "nb201", ["search", "--space", "nb201", "--params", str(params), "--data-root", "x"])
    assert cfg.data_root == "x"  # a flag still wins
    cfg = resolved(TrainCifarConfig, "train_cifar", ["train-cifar", "--params", str(params)])
    assert (cfg.dataset, cfg.data_root) == ("digits", str(tmp_path / "cifar"))
    cfg = resolved(TrainImageNetConfig, "train_imagenet", ["train-imagenet", "--params", str(params)])
    assert cfg.data_root == "data/imagenet"  # data.imagenet_root
    bare = tmp_path / "bare.yaml"
    bare.write_text("nb201:\n  epochs: 3\n")
    assert command_data(str(bare), "nb201") == []


def test_nb201_search_with_params_reads_cifar_from_data_root(tmp_path, monkeypatch, capsys):
    """The README's ``sd-darts search --space nb201 --params params.yaml`` on tiny CIFAR-format data
    in data.root (nothing at the default data/)."""
    root = tmp_path / "cifar"
    write_fake_cifar(root / FOLDER, per_batch=4)
    patch_md5_tables(monkeypatch, root / FOLDER, None)
    params = params_with_data(tmp_path, root=str(root), download=True)
    monkeypatch.chdir(tmp_path)  # no data/ here
    out = tmp_path / "run"
    argv = [
        "search",
        "--space",
        "nb201",
        "--params",
        str(params),
        "--epochs",
        "2",
        "--warmup-epochs",
        "1",
        "--window",
        "1",
        "--init-channels",
        "4",
        "--layers",
        "1",
        "--batch-size",
        "8",
        "--limit-samples",
        "16",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--no-download",
        "--out",
        str(out),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    summary_text = (out / "config.yaml").read_text()
    saved = yaml.safe_load(summary_text)
    assert (saved["space"], saved["dataset"], saved["data_root"]) == ("nb201", "cifar10", str(root))
    assert json.loads((out / "genotype.json").read_text())["space"] == "nb201"
