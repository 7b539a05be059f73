"""Settings of ``sd-darts search`` from flags and a params file: a params file and the flags
are layered before they are checked; a bad value is one line naming its flag or key, exit 2, and
nothing is written."""

from __future__ import annotations

import pytest
from search_cli import TINY_SEARCH, assert_one_line_refusal, run_cli


@pytest.mark.parametrize(
    "flag, value, named",
    [
        ("--learning-rate", "inf", "--learning-rate"),
        ("--sd-lambda", "inf", "--sd-lambda"),
        ("--temperature", "nan", "--temperature"),
        ("--momentum", "inf", "--momentum"),
        ("--weight-decay", "-inf", "--weight-decay"),
        ("--arch-beta2", "nan", "--arch-beta2"),
        ("--seed", "-1", "--seed"),
        ("--layers", "2", "--layers"),
        ("--device", "mps", "--device"),
        ("--device", "meta", "--device"),
        ("--device", "xla", "--device"),
        ("--method", "foo", "--method"),
        ("--window", "1000000", "--window"),
        ("--epochs", "100000000", "--epochs"),
        ("--image-size", "100000", "--image-size"),
        ("--out", "", "--out"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, capsys, flag, value, named):
    out = tmp_path / "run"
    argv = (
        ["search", *TINY_SEARCH, "--out", str(out), f"{flag}={value}"]
        if flag != "--out"
        else ["search", *TINY_SEARCH, "--out="]
    )
    code, err = run_cli(capsys, *argv)
    assert_one_line_refusal(code, err, named)
    assert not out.exists()


def test_params_file_then_flags_are_merged_before_validation(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("search: {epochs: 2, dataset: digits}\nnb201: {epochs: 2, dataset: digits}\n")
    small = ["--image-size", "16", "--init-channels", "4", "--limit-samples", "16", "--batch-size", "8"]
    small += ["--max-steps-per-epoch", "1", "--device", "cpu"]
    # the file's epochs: 2 and the flag's --warmup-epochs 1 are checked together (ξ < E holds)
    out = tmp_path / "run"
    code, err = run_cli(
        capsys, "search", "--params", str(params), *small, "--layers", "5", "--warmup-epochs", "1", "--out", str(out)
    )
    assert code == 0, err
    config = (out / "config.yaml").read_text()
    assert "warmup_epochs: 1\n" in config and "epochs: 2\n" in config
    # --space nb201 reads the nb201 section and takes the space's own size (N = 5), never the DARTS 8
    out = tmp_path / "nb"
    code, err = run_cli(
        capsys, "search", "--params", str(params), "--space", "nb201", *small, "--warmup-epochs", "1", "--out", str(out)
    )
    assert code == 0, err
    config = (out / "config.yaml").read_text()
    assert "space: nb201\n" in config and "layers: 5\n" in config


def test_a_bad_value_in_the_params_file_is_named_by_its_key(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("search: {epochs: 2, dataset: digits, learning_rate: .inf}\n")
    code, err = run_cli(capsys, "search", "--params", str(params), "--out", str(tmp_path / "run"))
    assert_one_line_refusal(code, err, f"{params}: search.learning_rate", "finite")
    assert not (tmp_path / "run").exists()
