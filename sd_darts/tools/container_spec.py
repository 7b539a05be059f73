"""What one container of sd-darts gets, checked before any Docker engine is asked (pure: no SDK).

The image name, ``--gpus``, ``--shm-size``, the mounts (the checkout at :data:`WORKDIR`, ``--data``,
``--volume``), the host variables passed through, and :func:`container_request`: the keyword
arguments of ``client.containers.create`` that :mod:`sd_darts.tools.container` hands to the engine.
:func:`image_provenance` reads the image back inside a container.  Why: docs/container.md.
"""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import UserError

#: Where the checkout is mounted in the container (the Dockerfile's WORKDIR).
WORKDIR = "/workspace/sd-darts"
#: The image name ``sd-darts container build`` tags and ``run`` uses by default.
DEFAULT_IMAGE = "sd-darts:latest"
#: ``/dev/shm`` of the container: room for DataLoader workers' batches and NCCL's buffers.
DEFAULT_SHM_SIZE = "8g"
#: Set in every container: the image's name and its id (``sha256:...``), for provenance.
IMAGE_ENV = "SD_DARTS_IMAGE"
IMAGE_ID_ENV = "SD_DARTS_IMAGE_ID"
#: Host environment variables passed into the container: only these names (no secrets such as
#: ``DVC_STUDIO_TOKEN``); any other one is passed with ``--env NAME``.
PASS_ENV = (
    "SD_DARTS_PARAMS",  # the params file of a stage
    "DVC_ROOT",  # a DVC stage's context, for DVCLive
    "DVC_STAGE",
    "DVC_EXP_BASELINE_REV",
    "DVC_EXP_NAME",
    "DVC_NO_ANALYTICS",
    "OMP_NUM_THREADS",  # threads and determinism
    "MKL_NUM_THREADS",
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "NCCL_DEBUG",  # multi-GPU communication
    "NCCL_SOCKET_IFNAME",
    "NCCL_P2P_DISABLE",
    "NCCL_IB_DISABLE",
    "TORCH_DISTRIBUTED_DEBUG",
)


# --------------------------------------------------------------------------------------------
# Checking the user's input (no engine needed)
# --------------------------------------------------------------------------------------------

# A Docker image reference: [registry[:port]/]name[/name...][:tag][@sha256:digest], or an id.
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?"
_NAME = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(rf"^{_HOST}{_NAME}(?:/{_NAME})*(?::\w[\w.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?$")
_IMAGE_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_SHM_RE = re.compile(r"^[0-9]+[bkmg]?$", re.IGNORECASE)
_GPU_ID_RE = re.compile(r"^(?:[0-9]+|(?:GPU|MIG)-[0-9a-zA-Z/-]+)$")


def check_image_name(name: str) -> str:
    """``name`` if it is a valid image reference (``sd-darts:latest``, ``ghcr.io/o/sd-darts:v1``)."""
    if not isinstance(name, str) or not (_IMAGE_RE.match(name) or _IMAGE_ID_RE.match(name)):
        raise UserError(
            f"image name {name!r} is malformed; use [registry/]name[:tag] in lower case, e.g. {DEFAULT_IMAGE}"
        )
    return name


def gpu_request(spec: str | None) -> dict[str, Any] | None:
    """The Docker device request for ``--gpus`` (``all``, a count ``2``, ids ``0,1`` or ``device=0``).

    ``None`` or an empty string: no GPUs.  Returns the keyword arguments of
    ``docker.types.DeviceRequest`` (the SDK accepts them as a dict).
    """
    if spec is None or spec == "":
        return None
    text = str(spec).strip()
    hint = "use all, a count (e.g. 2), or device ids (e.g. 0,1 or device=0)"
    if text == "all":
        return {"count": -1, "capabilities": [["gpu"]]}
    if text.isdigit() and "," not in text:
        if int(text) < 1:
            raise UserError(f"--gpus {spec!r} requests no GPU; omit --gpus to run without GPUs, or {hint}")
        return {"count": int(text), "capabilities": [["gpu"]]}
    ids = text[len("device=") :] if text.startswith("device=") else text
    if "," not in ids and not text.startswith("device="):
        raise UserError(f"--gpus {spec!r} is malformed; {hint}")
    parts = ids.split(",")
    if not all(_GPU_ID_RE.match(p) for p in parts):
        raise UserError(f"--gpus {spec!r} is malformed; {hint}")
    return {"device_ids": parts, "capabilities": [["gpu"]]}


def check_shm_size(size: str) -> str:
    if not _SHM_RE.match(str(size)):
        raise UserError(f"--shm-size {size!r} is malformed; use a size such as 8g, 512m or a number of bytes")
    return str(size)


# --------------------------------------------------------------------------------------------
# Paths: host <-> container
# --------------------------------------------------------------------------------------------


def find_checkout(start: str | os.PathLike | None = None) -> Path:
    """The repository to mount: the git top level above ``start`` (default: the current folder),
    or ``start`` itself outside git."""
    start = Path(start or os.getcwd()).resolve()
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return start
    return Path(top).resolve() if top else start


def container_path(host_path: str | os.PathLike, checkout: Path) -> str | None:
    """Where ``host_path`` appears in the container if it lies in the mounted checkout, else None."""
    p = Path(host_path).resolve()
    try:
        rel = p.relative_to(checkout)
    except ValueError:
        return None
    return str(PurePosixPath(WORKDIR, *rel.parts))


def _bind(source: Path, target: str, mode: str, flag: str) -> str:
    if ":" in str(source) or ":" in target or "," in str(source):
        raise UserError(f"{flag} {source}: paths with ':' or ',' cannot be mounted; rename or symlink the folder")
    return f"{source}:{target}:{mode}"


def _split_data(spec: str) -> tuple[str, str]:
    """``PATH`` and ``TARGET`` of ``--data PATH[:TARGET]``: the whole of ``spec`` if it names an
    existing path, else split at its last ':' (TARGET is absolute, so ``/p/a:b`` is no TARGET)."""
    host, sep, target = spec.rpartition(":")
    if os.path.lexists(Path(spec).expanduser()) or not sep or not host:
        return spec, ""
    if not target.startswith("/"):
        raise UserError(
            f"--data {spec}: no such file or folder (and {target!r} after the last ':' is no absolute "
            "container path); give an existing data folder, as PATH or PATH:/container/path"
        )
    return host, target


def data_mount(spec: str, checkout: Path) -> str:
    """A read-only bind for ``--data PATH[:TARGET]``.

    Without TARGET the folder appears where the code looks for it: at its place in the
    checkout if it lies in it, else at the same absolute path as on the host (so absolute
    paths in params.yaml hold in the container too).  The checkout itself is refused: it is
    mounted already, read-write.
    """
    host, target = _split_data(spec)
    source = Path(host).expanduser().resolve()
    if not source.exists():
        raise UserError(f"--data {host}: no such file or folder; give an existing data folder")
    if source == checkout and not target:
        raise UserError(
            f"--data {host} is the checkout, which is mounted read-write at {WORKDIR} already; drop this --data"
        )
    if not target:
        target = container_path(source, checkout) or str(source)
    if not target.startswith("/"):
        raise UserError(f"--data {spec}: the container path {target!r} must be absolute")
    return _bind(source, target, "ro", "--data")


def volume_mount(spec: str) -> str:
    """A bind for ``--volume HOST:CONTAINER[:ro|rw]`` (e.g. a shared DVC cache, read-write)."""
    parts = spec.split(":")
    if (
        len(parts) not in (2, 3)
        or not parts[0]
        or not parts[1].startswith("/")
        or parts[2:] not in ([], ["ro"], ["rw"])
    ):
        raise UserError(f"--volume {spec!r} is malformed; use HOST_PATH:/container/path[:ro|rw]")
    source = Path(parts[0]).expanduser().resolve()
    if not source.exists():
        raise UserError(f"--volume {spec}: {source} does not exist; create it first")
    return _bind(source, parts[1], parts[2] if len(parts) == 3 else "rw", "--volume")


def _check_targets(binds: Sequence[str]) -> None:
    """Refuse two mounts at one container path (``/data`` and ``/data/``, a --data of the checkout
    at its own place): Docker would refuse the container, or one would hide the other."""
    seen: dict[str, str] = {}
    for bind in binds:
        source, target, _ = bind.rsplit(":", 2)
        place = posixpath.normpath(target)
        if place == "/":
            raise UserError(f"{source} cannot be mounted at / in the container; give another container path")
        if place in seen:
            raise UserError(
                f"{source} and {seen[place]} would both be mounted at {place} in the container; "
                "give one of them another container path (PATH:/container/path) or drop it"
            )
        seen[place] = source


def passed_environment(environ: Mapping[str, str], checkout: Path) -> dict[str, str]:
    """The host variables passed into the container (:data:`PASS_ENV`); a value that
    is a path in the checkout (``DVC_ROOT``) is mapped to its place in the container."""
    out = {}
    for key, value in environ.items():
        if key in PASS_ENV:
            mapped = container_path(value, checkout) if value.startswith("/") else None
            out[key] = mapped or value
    return out


# --------------------------------------------------------------------------------------------
# The request handed to the SDK
# --------------------------------------------------------------------------------------------


def container_request(
    argv: Sequence[str],
    *,
    image: str,
    image_id: str,
    checkout: str | os.PathLike,
    workdir: str | os.PathLike | None = None,
    gpus: str | None = None,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    data: Iterable[str] = (),
    volumes: Iterable[str] = (),
    network: str | None = None,
    shm_size: str | None = DEFAULT_SHM_SIZE,
    ipc_host: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``client.containers.create`` for one command (pure: no engine).

    ``workdir`` (default: the current folder) must lie in ``checkout``; ``env`` is added to
    the variables passed through from ``environ`` (default: ``os.environ``).
    """
    if not argv:
        raise UserError("no command to run in the container; give it after '--', e.g. -- sd-darts --help")
    checkout = Path(checkout).resolve()
    workdir = Path(workdir or os.getcwd()).resolve()
    inside = container_path(workdir, checkout)
    if inside is None:
        raise UserError(f"the working folder {workdir} is not in the checkout {checkout} mounted in the container")
    environment = passed_environment(os.environ if environ is None else environ, checkout)
    environment.update(env or {})
    environment[IMAGE_ENV] = image
    environment[IMAGE_ID_ENV] = image_id
    binds = [_bind(checkout, WORKDIR, "rw", "checkout")]
    binds += [data_mount(d, checkout) for d in data]
    binds += [volume_mount(v) for v in volumes]
    _check_targets(binds)
    request: dict[str, Any] = {
        "image": image_id,
        "command": list(argv),
        "working_dir": inside,
        "user": user or f"{os.getuid()}:{os.getgid()}",
        "environment": environment,
        "volumes": binds,
        "detach": True,
        "stdin_open": False,
        "tty": False,
        "labels": {"org.opencontainers.image.title": "sd-darts", "sd-darts.image": image},
    }
    device = gpu_request(gpus)
    if device is not None:
        request["device_requests"] = [device]
    if ipc_host:
        request["ipc_mode"] = "host"
    elif shm_size:
        request["shm_size"] = check_shm_size(shm_size)
    if network:
        request["network_mode"] = network
    return request


def image_provenance(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{"image": ..., "image_id": ...}`` when running in a container started by
    :mod:`sd_darts.tools.container`, else ``{}``."""
    environ = os.environ if environ is None else environ
    if IMAGE_ID_ENV not in environ:
        return {}
    return {"image": environ.get(IMAGE_ENV, "unknown"), "image_id": environ[IMAGE_ID_ENV]}
