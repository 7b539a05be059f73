"""The memory check of ``sd-darts search``: settings too large for the machine are one line
naming the setting, exit 2, and nothing is written."""

from __future__ import annotations

from search_cli import TINY_SEARCH, assert_one_line_refusal, run_cli


def test_memory_shaped_settings_are_checked_against_the_machine(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(
        capsys, "search", *TINY_SEARCH, "--out", str(out), "--batch-size", "60000", "--init-channels", "512"
    )
    assert_one_line_refusal(code, err, "GiB", "--batch-size")
    assert not out.exists()
