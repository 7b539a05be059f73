"""What every DVC stage does before its own work: read the params file, and run itself inside
the image when ``pipeline.runner`` is ``docker``, or as a SLURM batch job when it is ``slurm``
(:mod:`sd_darts.experiment.slurm`).

A stage is a module of :mod:`sd_darts.experiment.stages` with a ``main(argv)`` made by
:func:`stage`; ``pipelines/<stage>.py`` calls it.  With ``runner: docker`` the stage re-runs the
same module with the same arguments inside ``pipeline.image`` through :mod:`sd_darts.container`
(the checkout mounted at the same place, as the caller's user), so the outputs land in the
same files as with ``runner: local``; inside the container the stage runs locally.  With
``runner: slurm`` the heavy stages submit the same module with the same arguments as one batch
job and wait for it; inside the job the stage runs locally, and SIGUSR2 (sent before the time
limit) stops it at its checkpoint like SIGTERM.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from .. import container
from ..runtime import exit_code, install_signal_handlers, setup_logging
from . import slurm
from .schema import Params, read_params

#: The params file the stages read (``dvc repro`` runs them in the repository root).
PARAMS_ENV = "SD_DARTS_PARAMS"


def params_path() -> str:
    return os.environ.get(PARAMS_ENV, "params.yaml")


def _outside_mounts(p: Params) -> list[str]:
    """Data paths that the checkout mount does not cover, mounted read-only for the container."""
    checkout = container.find_checkout(os.getcwd())
    out = []
    for path in (p.data.root, p.data.imagenet_root, p.data.nb201_benchmark):
        resolved = Path(path).resolve()
        if resolved.exists() and not resolved.is_relative_to(checkout):
            out.append(str(resolved))
    return out


def in_image(p: Params, module: str, argv: list[str]) -> int:
    """Run the stage ``module`` with ``argv`` inside ``pipeline.image``; its exit code."""
    return container.run_in_image(
        ["python", "-m", __name__, module, *argv],
        image=p.pipeline.image,
        gpus=p.pipeline.gpus,
        data=_outside_mounts(p),
        env={PARAMS_ENV: params_path()},
    )


def stage(configure: Callable[[argparse.ArgumentParser], None] | None = None):
    """Decorate ``work(p, args) -> int`` into the stage's ``main(argv) -> int``."""

    def wrap(work: Callable[[Params, argparse.Namespace], int | None]):
        module = work.__module__
        name = module.rpartition(".")[2]

        @functools.wraps(work)
        def main(argv: list[str] | None = None) -> int:
            argv = sys.argv[1:] if argv is None else list(argv)
            setup_logging()
            install_signal_handlers()
            parser = argparse.ArgumentParser(prog=f"pipelines/{name}.py", description=sys.modules[module].__doc__)
            if configure is not None:
                configure(parser)
            args = parser.parse_args(argv)

            def run() -> int:
                p = read_params(params_path())
                if p.pipeline.runner == "docker" and not container.image_provenance():
                    return in_image(p, module, argv)
                if slurm.inside_job():
                    install_signal_handlers(also=(signal.SIGUSR2,))
                elif p.pipeline.runner == "slurm" and (kind := slurm.stage_kind(name, args)) is not None:
                    return slurm.run_as_job(p, kind, module, argv, params_path(), PARAMS_ENV)
                return int(work(p, args) or 0)

            return exit_code(name, run)

        return main

    return wrap


def _run_module(argv: list[str]) -> int:
    """``python -m sd_darts.experiment.stage MODULE ARGS...``: what :func:`in_image` runs."""
    module, *rest = argv
    if not module.startswith("sd_darts.experiment.stages."):
        raise SystemExit(f"not a stage module: {module}")
    return importlib.import_module(module).main(rest)


if __name__ == "__main__":
    sys.exit(_run_module(sys.argv[1:]))
