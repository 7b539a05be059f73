"""ImageNet folders (paper §4.3): layout checks with one-line errors, loading real JPEG files,
the PC-DARTS transforms, and an end-to-end ``sd-darts train-imagenet`` smoke run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import WNIDS, make_imagenet

from sd_darts.cli import main
from sd_darts.data.imagenet import imagenet_transforms, load_imagenet, scan_imagenet
from sd_darts.errors import UserError


def test_scan_and_load_real_jpegs(tmp_path):
    root = make_imagenet(tmp_path / "imagenet")
    (root / "train" / WNIDS[0] / "notes.txt").write_text("not an image")
    wnids, train, val = scan_imagenet(root)
    assert wnids == sorted(WNIDS)
    assert len(train) == 9 and len(val) == 6
    assert [label for _, label in train] == [0, 0, 0, 1, 1, 1, 2, 2, 2]

    data = load_imagenet(root, image_size=32)
    assert data.num_classes == 3 and data.image_size == 32
    image, label, index = data.train[4]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert (label, index) == (1, 4)
    # Evaluation transform is deterministic (Resize 256/224 -> CenterCrop), training is random.
    a, _, _ = data.test[0]
    b, _, _ = data.test[0]
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    torch.manual_seed(0)
    t1 = data.train[0][0]
    t2 = data.train[0][0]
    assert not torch.equal(t1, t2)


def test_cutout_is_applied_after_normalisation(tmp_path):
    from PIL import Image

    img = Image.fromarray(np.full((64, 64, 3), 200, dtype=np.uint8))
    torch.manual_seed(0)
    out = imagenet_transforms(32, train=True, cutout_length=8)(img)
    # Normalised pixels of a flat 200-grey image are far from 0; Cutout leaves exact zeros.
    zeros = (out == 0).all(dim=0)
    assert 0 < int(zeros.sum()) <= 64
    assert float(out[:, ~zeros].abs().min()) > 0.1


def _move_root(r: Path) -> None:
    r.rename(r.parent / "elsewhere")


def _drop_val(r: Path) -> None:
    shutil.rmtree(r / "val")


def _flatten_val(r: Path) -> None:
    """The raw ILSVRC2012 validation archive: images directly in val/."""
    for w in WNIDS:
        for p in (r / "val" / w).iterdir():
            p.rename(r / "val" / p.name)
        (r / "val" / w).rmdir()


def _drop_val_class(r: Path) -> None:
    shutil.rmtree(r / "val" / WNIDS[2])


def _empty_train_class(r: Path) -> None:
    for p in (r / "train" / WNIDS[1]).iterdir():
        p.unlink()


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (_move_root, "does not exist"),
        (_drop_val, "no val/ folder"),
        (_flatten_val, "images directly"),
        (_drop_val_class, "lacks 1 classes"),
        (_empty_train_class, "holds no images"),
    ],
)
def test_malformed_folders_give_one_line_layout_errors(tmp_path, mutate, fragment):
    root = make_imagenet(tmp_path / "imagenet", per_class_train=1, per_class_val=1)
    mutate(root)
    with pytest.raises(UserError) as exc:
        scan_imagenet(root)
    message = str(exc.value)
    assert fragment in message
    assert "train/<wnid>/*.JPEG" in message and "\n" not in message


def test_train_imagenet_bad_folder_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train-imagenet",
            "--data-root",
            str(tmp_path / "missing"),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "val/<wnid>/*.JPEG" in err
    assert not out.exists()


def test_train_imagenet_end_to_end(tmp_path):
    """Tiny network, 224x224 crops with the auxiliary head, two epochs of two steps."""
    root = make_imagenet(tmp_path / "imagenet", per_class_train=3, per_class_val=1)
    out = tmp_path / "run"
    args = [
        "train-imagenet",
        "--data-root",
        str(root),
        "--out",
        str(out),
        "--init-channels",
        "4",
        "--layers",
        "3",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--max-steps-per-epoch",
        "2",
        "--warmup-epochs",
        "1",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_error", "top5_error", "params_m", "best_test_error", "best_epoch"):
        assert key in metrics
    assert metrics["num_classes"] == 3 and metrics["top5_error"] == 0.0  # 3 classes: top-5 always hits
    assert metrics["recipe"] == "train-imagenet"
    lrs = [float(line.split("\t")[1]) for line in (out / "dvclive/plots/metrics/lr.tsv").read_text().splitlines()[1:]]
    assert lrs == pytest.approx([0.5, 0.25])  # warm-up 1 epoch at 0.5, then linear decay
    weights = torch.load(out / "model.pt", weights_only=True)
    assert weights["num_classes"] == 3 and weights["auxiliary"] is True
