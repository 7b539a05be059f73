"""Every ``sd-darts`` command of README.md runs as written: it parses with the CLI's own parser
(a renamed subcommand or flag fails), and its subcommand's ``--help`` exits 0."""

from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest
from support import ROOT

from sd_darts.cli import build_parser, main

README = ROOT / "README.md"


def readme_commands(text: str) -> list[tuple[str, bool]]:
    """``(line, inline)``: the ``sd-darts ...`` command lines of the fenced shell blocks, then
    those of the inline code spans of the prose."""
    commands = []
    for block in re.findall(r"^```(?:bash|sh|shell|console)?\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("sd-darts "):
                commands.append((line.strip(), False))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    commands += [(s.strip(), True) for s in re.findall(r"`([^`\n]+)`", prose) if s.startswith("sd-darts ")]
    return commands


def argvs(command: str) -> list[list[str]]:
    """The argument lists of one README line: comments dropped, ``A | B`` alternatives each."""
    words = shlex.split(command, comments=True)[1:]
    if "|" not in words:
        return [words]
    # "sd-darts container build | run -- CMD", "pipeline status | record | cancel": alternatives of
    # the word before the first bar.
    bar = words.index("|")
    head, groups = words[: bar - 1], [[]]
    for word in words[bar - 1 :]:
        if word == "|":
            groups.append([])
        else:
            groups[-1].append(word)
    return [head + group for group in groups]


COMMANDS = [(line, argv, inline) for line, inline in readme_commands(README.read_text()) for argv in argvs(line)]


def test_readme_has_the_commands():
    names = {argv[0] for _line, argv, inline in COMMANDS if not inline}
    assert {"search", "train-cifar", "train-imagenet", "stats", "nb201-query", "report", "container"} <= names


def subcommand(argv: list[str]) -> list[str]:
    """The subcommand words of ``argv`` (``container run``, not its options)."""
    words = argv[:1]
    if argv[:1] == ["container"] and len(argv) > 1:
        words.append(argv[1])
    return words


@pytest.mark.parametrize("line, argv, inline", COMMANDS, ids=[" ".join(a) for _l, a, _i in COMMANDS])
def test_readme_command_parses_and_its_help_runs(line, argv, inline):
    err = io.StringIO()
    mention = inline and argv == subcommand(argv)  # prose naming a command: `sd-darts checksum`
    with contextlib.redirect_stderr(err):
        try:
            if not mention:
                build_parser().parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"README's `{line}` does not parse (exit {exc.code}): {err.getvalue().strip()}")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main([*subcommand(argv), "--help"]) == 0
    assert f"usage: sd-darts {' '.join(subcommand(argv))}" in out.getvalue()
