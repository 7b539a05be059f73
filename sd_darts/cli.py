"""The ``sd-darts`` command line.

Subcommands live one per file in :mod:`sd_darts.commands`; each module defines ``NAME``,
``HELP``, ``register(parser)`` and ``run(args) -> int``.  A command module imports at its top
only what its flags need; ``run`` imports the work (torch, the library), so ``sd-darts --help``
and every subcommand's ``--help`` start without torch (tests/cli/test_cli_lazy.py).  A :class:`~sd_darts.errors.UserError`
anywhere becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__


def _command_modules():
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit code 2 (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sd-darts",
        description="SD-DARTS: differentiable architecture search with self-distillation (Zhu et al., 2023).",
    )
    parser.add_argument("--version", action="version", version=f"sd-darts {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.register(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .utils.runtime import exit_code, install_signal_handlers, setup_logging

    install_signal_handlers()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error (exit 2)
        return int(exc.code or 0)
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) while the command modules are imported
        print("sd-darts: stopped before anything was done", file=sys.stderr)
        return 130
    setup_logging()
    return exit_code(f"sd-darts {args.command}", lambda: args._run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
