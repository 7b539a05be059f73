"""What every DVC stage does before its own work: read the params file, and run itself inside
``pipeline.image`` when ``pipeline.runner`` is ``docker`` or as a SLURM batch job when it is
``slurm`` (same module, same arguments; docs/pipeline.md, docs/container.md, docs/cluster.md).
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from ..tools import container, container_spec
from ..utils.runtime import exit_code, install_signal_handlers, setup_logging
from . import slurm
from .schema import Params, read_params

#: The params file the stages read (``dvc repro`` runs them in the repository root).
PARAMS_ENV = "SD_DARTS_PARAMS"


def params_path() -> str:
    return os.environ.get(PARAMS_ENV, "params.yaml")


def _outside_mounts(p: Params) -> list[str]:
    """Data paths that the checkout mount does not cover, mounted read-only for the container."""
    checkout = container_spec.find_checkout(os.getcwd())
    out = []
    for path in (p.data.root, p.data.imagenet_root, p.data.nb201_benchmark):
        resolved = Path(path).resolve()
        if resolved.exists() and not resolved.is_relative_to(checkout):
            out.append(str(resolved))
    return out


def in_image(p: Params, module: str, argv: list[str]) -> int:
    """Run the stage ``module`` with ``argv`` inside ``pipeline.image``; its exit code."""
    return container.run_in_image(
        ["python", "-m", module, *argv],
        image=p.pipeline.image,
        gpus=p.pipeline.gpus,
        data=_outside_mounts(p),
        env={PARAMS_ENV: params_path()},
    )


def stage(configure: Callable[[argparse.ArgumentParser], None] | None = None):
    """Decorate ``work(p, args) -> int`` into the stage's ``main(argv) -> int``."""

    def wrap(work: Callable[[Params, argparse.Namespace], int | None]):
        module = work.__module__
        if module == "__main__":  # run by ``python -m``: the docker and SLURM runners need its real name
            module = sys.modules["__main__"].__spec__.name
        name = module.rpartition(".")[2]

        @functools.wraps(work)
        def main(argv: list[str] | None = None) -> int:
            argv = sys.argv[1:] if argv is None else list(argv)
            setup_logging()
            install_signal_handlers()
            parser = argparse.ArgumentParser(prog=f"python -m {module}", description=work.__globals__["__doc__"])
            if configure is not None:
                configure(parser)
            args = parser.parse_args(argv)

            def run() -> int:
                p = read_params(params_path())
                if p.pipeline.runner == "docker" and not container_spec.image_provenance():
                    return in_image(p, module, argv)
                if slurm.inside_job():  # SLURM's SIGUSR2 before the time limit stops at the checkpoint too
                    install_signal_handlers(also=(signal.SIGUSR2,))
                elif p.pipeline.runner == "slurm" and (kind := slurm.stage_kind(name, args)) is not None:
                    return slurm.run_as_job(p, kind, module, argv, params_path(), PARAMS_ENV)
                return int(work(p, args) or 0)

            return exit_code(name, run)

        return main

    return wrap
