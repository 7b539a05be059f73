"""``sd-darts --help`` and every subcommand's ``--help``: no torch imported, one default per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import ROOT as REPO

# Runs the CLI's main on each argv of a JSON list, in one interpreter per argv list; prints, per
# argv, its exit code, whether torch was imported, and the help text.
_PROBE = """
import contextlib, io, json, sys
from sd_darts.cli import main
out = []
for argv in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
    out.append({"argv": argv, "rc": rc, "torch": "torch" in sys.modules, "help": buf.getvalue()})
print(json.dumps(out))
"""


def _commands() -> list[list[str]]:
    """Every subcommand (and the container's actions), read from the parser itself."""
    import argparse

    from sd_darts.cli import build_parser

    def subcommands(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append(prefix + [name])
                    found.extend(subcommands(sub, prefix + [name]))
        return found

    return subcommands(build_parser(), [])


COMMANDS = _commands()


def probe(argvs: list[list[str]], columns: int = 100) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(columns)}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argvs)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_every_command_is_probed():
    names = {c[0] for c in COMMANDS}
    assert {"search", "train-cifar", "train-imagenet", "nb201-query", "report", "stats", "container"} <= names
    assert ["container", "run"] in COMMANDS


@pytest.mark.parametrize("argv", [[]] + COMMANDS, ids=lambda a: " ".join(a) or "sd-darts")
def test_help_imports_no_torch(argv):
    (result,) = probe([argv + ["--help"]])
    assert result["rc"] == 0, result
    assert "usage: sd-darts" in result["help"]
    assert not result["torch"], f"sd-darts {' '.join(argv)} --help imported torch"


def test_module_help_imports_no_torch():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "import runpy, sys; sys.argv = ['sd_darts', '--help']\ntry:\n    runpy.run_module('sd_darts', run_name='__main__')\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\nprint('TORCH', 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("TORCH False"), proc.stdout[-300:]


def test_one_default_per_help_line():
    # Wide enough that each option's help is one line, so a line is an option.
    results = probe([argv + ["--help"] for argv in COMMANDS], columns=10_000)
    doubled = [
        f"sd-darts {' '.join(r['argv'][:-1])}: {line.strip()}"
        for r in results
        for line in r["help"].splitlines()
        if line.lower().count("default") > 1
    ]
    assert not doubled, "\n".join(doubled)
    search = next(r["help"] for r in results if r["argv"] == ["search", "--help"])
    assert "supernet initial channels C (default: the space's, 16)\n" in search
    assert "--epochs INT          search epochs E (default: 50)\n" in search
