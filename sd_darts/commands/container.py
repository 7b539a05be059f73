"""``sd-darts container build|run``: the package's Docker image, through the Docker SDK
(:mod:`sd_darts.tools.container`; docs/container.md)."""

from __future__ import annotations

import argparse
import sys

NAME = "container"
HELP = "build the sd-darts Docker image from this checkout, or run a command in it (checkout mounted, as you)"


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def register(parser: argparse.ArgumentParser) -> None:
    from ..tools.container_spec import DEFAULT_IMAGE, DEFAULT_SHM_SIZE, WORKDIR

    sub = parser.add_subparsers(dest="container_command", metavar="ACTION")
    sub.required = True
    build = sub.add_parser("build", help="build the image from the checkout's Dockerfile (output streamed)")
    build.add_argument("--tag", default=DEFAULT_IMAGE, help=f"image name (default: {DEFAULT_IMAGE})")
    build.add_argument("--base-image", default=None, help="BASE_IMAGE build argument (default: the Dockerfile's)")
    build.add_argument(
        "--build-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE", help="more build arguments"
    )
    build.add_argument("--network", default=None, help="network of the build's RUN steps (e.g. host)")
    build.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    build.add_argument("--checkout", default=None, help="build context (default: the git top level here)")

    run = sub.add_parser(
        "run",
        help=f"run a command in the image: the checkout mounted at {WORKDIR}, as your uid:gid",
        description=f"Run CMD in the image with the checkout mounted at {WORKDIR}, as your uid:gid, "
        "starting in the folder that matches the current one; exits with CMD's exit code.",
    )
    run.add_argument("--image", default=DEFAULT_IMAGE, help=f"image name (default: {DEFAULT_IMAGE})")
    run.add_argument("--gpus", default=None, metavar="all|N|ID,ID", help="GPUs for the container, as docker run --gpus")
    run.add_argument(
        "--shm-size", default=DEFAULT_SHM_SIZE, help=f"size of /dev/shm (default: {DEFAULT_SHM_SIZE}; DataLoader, NCCL)"
    )
    run.add_argument("--ipc-host", action="store_true", help="share the host's IPC namespace instead of --shm-size")
    run.add_argument("--network", default=None, help="container network, e.g. none (default: the engine's)")
    run.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="PATH[:TARGET]",
        help="mount a data folder read-only (default TARGET: its place in the checkout, or the same absolute path)",
    )
    run.add_argument(
        "--volume",
        action="append",
        default=[],
        metavar="HOST:TARGET[:ro|rw]",
        help="mount another folder, e.g. a shared DVC cache",
    )
    run.add_argument(
        "--env", action="append", default=[], metavar="NAME[=VALUE]", help="set (or pass through) a variable"
    )
    run.add_argument("--user", default=None, help="uid:gid in the container (default: yours)")
    run.add_argument("--checkout", default=None, help="folder to mount (default: the git top level here)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the command to run")


def _environment(items: list[str]) -> dict[str, str]:
    import os

    from ..errors import UserError

    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not name:
            raise UserError(f"--env {item!r} is malformed; use NAME=VALUE or NAME")
        if not sep:
            if name not in os.environ:
                raise UserError(f"--env {name}: not set here; use --env {name}=VALUE")
            value = os.environ[name]
        env[name] = value
    return env


def run(args: argparse.Namespace) -> int:
    from ..tools import container

    if args.container_command == "build":
        built = container.build_image(
            args.tag,
            checkout=args.checkout,
            base_image=args.base_image,
            build_args=dict(args.build_arg),
            network=args.network,
            no_cache=args.no_cache,
        )
        print(f"image: {args.tag} {built}")
        return 0
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        from ..errors import UserError

        raise UserError(
            "no command to run in the container; give it after '--', e.g. sd-darts container run -- sd-darts --help"
        )
    sys.stdout.flush()
    return container.run_in_image(
        cmd,
        image=args.image,
        gpus=args.gpus,
        checkout=args.checkout,
        env=_environment(args.env),
        data=args.data,
        volumes=args.volume,
        network=args.network,
        shm_size=args.shm_size,
        ipc_host=args.ipc_host,
        user=args.user,
    )
