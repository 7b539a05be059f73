"""Run sd-darts inside its Docker image, through the Docker SDK (``pip install 'sd-darts[docker]'``).

:func:`build_image` builds the image from a checkout; :func:`run_in_image` runs one command in
it (checkout mounted at :data:`~sd_darts.tools.container_spec.WORKDIR`, the caller's uid:gid, GPUs
as ``docker run --gpus``; the request: :mod:`sd_darts.tools.container_spec`) and returns its exit
code.  Engine problems are one-line :class:`~sd_darts.errors.UserError`\\ s; the SDK is imported
lazily.  What a run gets and why: docs/container.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import UserError
from .container_spec import (
    DEFAULT_IMAGE,
    DEFAULT_SHM_SIZE,
    IMAGE_ID_ENV,
    check_image_name,
    container_request,
    find_checkout,
)

_INSTALL_HINT = "the Docker SDK is not installed; pip install 'sd-darts[docker]' (or: pip install docker)"


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


def _sdk():
    try:
        import docker
    except ImportError:
        raise UserError(_INSTALL_HINT) from None
    return docker


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def connect():
    """A Docker client for ``DOCKER_HOST`` (default: the local socket), checked with a ping."""
    docker = _sdk()
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise UserError(
            f"no Docker daemon reachable at {where} ({_first_line(exc)}); start dockerd, or point "
            "DOCKER_HOST at its socket, e.g. DOCKER_HOST=unix:///path/to/docker.sock"
        ) from None
    # builds and runs are silent for minutes at a time: no read timeout from here on
    client.api.timeout = None
    return client


def image_id(client, image: str) -> str:
    """The id (``sha256:...``) of ``image`` on the engine, or a one-line error saying how to build it."""
    docker = _sdk()
    check_image_name(image)
    try:
        return client.images.get(image).id
    except docker.errors.ImageNotFound:
        raise UserError(
            f"image {image} is not on this Docker engine; build it with 'sd-darts container build --tag {image}' "
            "in the sd-darts checkout"
        ) from None
    except docker.errors.APIError as exc:
        raise UserError(f"image {image} cannot be read from the Docker engine ({_first_line(exc)})") from None


def _start_error(exc: BaseException, request: Mapping[str, Any]) -> UserError:
    msg = _first_line(exc)
    if request.get("device_requests") and ("device driver" in msg or "nvidia" in msg.lower() or "gpu" in msg.lower()):
        return UserError(
            f"GPUs were requested but this Docker engine has no GPU runtime ({msg}); install the NVIDIA "
            "Container Toolkit on the host and restart dockerd, or run without --gpus"
        )
    return UserError(f"the container could not start ({msg})")


def run_container(
    client, request: Mapping[str, Any], stdout: BinaryIO | None = None, stderr: BinaryIO | None = None
) -> int:
    """Create, start and follow one container (``request``: :func:`container_request`); return
    its exit code.  The container is removed in every case, a failed start included; Ctrl-C
    (or SIGTERM) is forwarded to the command, which keeps its last checkpoint, before the removal."""
    docker = _sdk()
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr.buffer
    container = None
    try:
        try:
            container = client.containers.create(**request)
            # attach before start (as `docker run` does): nothing a quick command writes is lost
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=True, demux=True)
            container.start()
        except docker.errors.APIError as exc:
            raise _start_error(exc, request) from None
        try:
            for chunk_out, chunk_err in stream:
                for target, chunk in ((out, chunk_out), (err, chunk_err)):
                    if chunk:
                        target.write(chunk)
                        target.flush()
            return int(container.wait().get("StatusCode", 1))
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM where the CLI turns it into an exception
            container.kill(signal="SIGTERM" if type(exc).__name__ == "Terminated" else "SIGINT")
            try:
                container.wait(timeout=60)
            except Exception:  # the removal below kills it anyway
                pass
            raise
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.APIError as exc:
                if getattr(exc, "status_code", None) != 404:
                    print(
                        f"warning: container {container.id[:12]} was not removed ({_first_line(exc)})", file=sys.stderr
                    )


def run_in_image(
    argv: Sequence[str],
    *,
    image: str = DEFAULT_IMAGE,
    gpus: str | None = None,
    workdir: str | os.PathLike | None = None,
    checkout: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    data: Iterable[str] = (),
    volumes: Iterable[str] = (),
    network: str | None = None,
    shm_size: str | None = DEFAULT_SHM_SIZE,
    ipc_host: bool = False,
    user: str | None = None,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
    client=None,
) -> int:
    """Run ``argv`` in ``image`` as the caller, in the container folder matching ``workdir``
    (default: the current folder), with the checkout (default: the git top level of
    ``workdir``) mounted; return the command's exit code.  See the module docstring; the
    pipeline's docker runner calls this for each stage command."""
    check_image_name(image)
    workdir = Path(workdir or os.getcwd()).resolve()
    checkout = Path(checkout).resolve() if checkout else find_checkout(workdir)
    # every setting is checked before the engine is asked anything
    request = container_request(
        argv,
        image=image,
        image_id="",
        checkout=checkout,
        workdir=workdir,
        gpus=gpus,
        user=user,
        env=env,
        data=data,
        volumes=volumes,
        network=network,
        shm_size=shm_size,
        ipc_host=ipc_host,
    )
    client = client or connect()
    request["image"] = request["environment"][IMAGE_ID_ENV] = image_id(client, image)
    return run_container(client, request, stdout=stdout, stderr=stderr)


# --------------------------------------------------------------------------------------------
# Building the image
# --------------------------------------------------------------------------------------------


def _git(checkout: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=checkout, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return res.stdout.strip() or None


def _public_url(url: str | None) -> str | None:
    """A remote URL without credentials (``https://user:token@host/x`` -> ``https://host/x``);
    None for a local path (nothing others can fetch)."""
    if not url or url.startswith(("/", ".", "~", "file:")):
        return None
    if "://" not in url:
        return url  # scp-like git@host:path
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def default_build_args(checkout: Path) -> dict[str, str]:
    """OCI label values: the package version, the git revision and the (credential-free) origin URL."""
    from .. import __version__

    args = {"VERSION": __version__}
    revision = _git(checkout, "rev-parse", "HEAD")
    source = _public_url(_git(checkout, "remote", "get-url", "origin"))
    if revision:
        args["REVISION"] = revision
    if source:
        args["SOURCE"] = source
    return args


def build_image(
    tag: str = DEFAULT_IMAGE,
    *,
    checkout: str | os.PathLike | None = None,
    base_image: str | None = None,
    build_args: Mapping[str, str] | None = None,
    network: str | None = None,
    no_cache: bool = False,
    progress: Any = None,
    client=None,
) -> str:
    """Build the image from the checkout's Dockerfile, streaming the build's output to
    ``progress`` (default: stderr); return the image id.  ``base_image`` sets ``BASE_IMAGE``;
    ``network`` is the build's network (``host`` where pip reaches its index only as the host does)."""
    check_image_name(tag)
    if base_image is not None:
        check_image_name(base_image)
    root = Path(checkout).resolve() if checkout else find_checkout()
    if not (root / "Dockerfile").is_file():
        raise UserError(f"no Dockerfile in {root}; run in the sd-darts checkout or pass --checkout")
    args = default_build_args(root)
    if base_image:
        args["BASE_IMAGE"] = base_image
    args.update(build_args or {})
    progress = progress or sys.stderr
    client = client or connect()
    docker = _sdk()
    built = None
    try:
        for chunk in client.api.build(
            path=str(root),
            tag=tag,
            buildargs=args,
            network_mode=network,
            nocache=no_cache,
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "error" in chunk:
                lines = [ln for ln in str(chunk["error"]).splitlines() if ln.strip()]
                raise UserError(f"docker build of {tag} failed: {lines[-1] if lines else 'unknown error'}")
            if chunk.get("stream"):
                progress.write(chunk["stream"])
                progress.flush()
            elif chunk.get("status"):
                progress.write(f"{chunk['status']} {chunk.get('progress', '')}\n")
            if isinstance(chunk.get("aux"), dict) and chunk["aux"].get("ID"):
                built = chunk["aux"]["ID"]
    except docker.errors.APIError as exc:
        raise UserError(f"docker build of {tag} failed: {_first_line(exc)}") from None
    return built or image_id(client, tag)
