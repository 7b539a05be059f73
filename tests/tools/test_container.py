"""sd_darts.tools.container without a Docker engine: the request handed to the SDK, the handling of a
container's life (exit code, removal on failure, Ctrl-C), and bad input through the CLI.
The real engine is exercised by scripts/docker_check.sh."""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import ROOT

from sd_darts.cli import main
from sd_darts.errors import UserError
from sd_darts.tools import container, container_spec

IMAGE_ID = "sha256:" + "ab" * 32


# --------------------------------------------------------------------------------------------
# A fake Docker SDK: the errors module and a client recording what it is asked
# --------------------------------------------------------------------------------------------


class DockerException(Exception):
    pass


class APIError(DockerException):
    def __init__(self, message, status_code=500):
        super().__init__(message)
        self.explanation = message
        self.status_code = status_code


class ImageNotFound(APIError):
    pass


FAKE_SDK = types.SimpleNamespace(
    errors=types.SimpleNamespace(DockerException=DockerException, APIError=APIError, ImageNotFound=ImageNotFound)
)


class FakeContainer:
    id = "c0ffee" * 10

    def __init__(self, client, request):
        self.client, self.request = client, request
        self.started = self.removed = False
        self.killed = None

    def attach(self, **kwargs):
        self.client.attach_kwargs = kwargs
        return self.client.chunks()

    def start(self):
        if self.client.start_error is not None:
            raise self.client.start_error
        self.started = True

    def wait(self, timeout=None):
        return {"StatusCode": self.client.exit_code}

    def kill(self, signal=None):
        self.killed = signal

    def remove(self, force=False):
        assert force
        self.removed = True


class FakeClient:
    def __init__(self, exit_code=0, output=((b"out\n", None), (None, b"err\n")), start_error=None, images=(IMAGE_ID,)):
        self.exit_code, self.output, self.start_error = exit_code, output, start_error
        self.created: list[FakeContainer] = []
        client = self

        class Containers:
            def create(self, **request):
                client.created.append(FakeContainer(client, request))
                return client.created[-1]

        class Images:
            def get(self, name):
                if not images:
                    raise ImageNotFound(f"No such image: {name}", status_code=404)
                return types.SimpleNamespace(id=images[0])

        self.containers, self.images = Containers(), Images()

    def chunks(self):
        yield from self.output


@pytest.fixture
def fake_sdk(monkeypatch):
    monkeypatch.setattr(container, "_sdk", lambda: FAKE_SDK)


@pytest.fixture
def checkout(tmp_path):
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "data" / "cifar").mkdir(parents=True)
    return root.resolve()


def request(checkout, **kwargs):
    kwargs.setdefault("workdir", checkout)
    return container_spec.container_request(
        ["sd-darts", "--help"], image="sd-darts:latest", image_id=IMAGE_ID, checkout=checkout, environ={}, **kwargs
    )


# --------------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------------


def test_request_mounts_checkout_runs_as_caller_in_matching_folder(checkout, tmp_path):
    outside = tmp_path / "datasets" / "imagenet"
    outside.mkdir(parents=True)
    req = request(checkout, workdir=checkout / "sub", data=[str(outside), str(checkout / "data" / "cifar")])
    assert req["image"] == IMAGE_ID
    assert req["command"] == ["sd-darts", "--help"]
    assert req["working_dir"] == f"{container_spec.WORKDIR}/sub"
    assert req["user"] == f"{os.getuid()}:{os.getgid()}"
    assert req["volumes"] == [
        f"{checkout}:{container_spec.WORKDIR}:rw",
        f"{outside.resolve()}:{outside.resolve()}:ro",  # outside the checkout: the same absolute path
        f"{checkout}/data/cifar:{container_spec.WORKDIR}/data/cifar:ro",  # in the checkout: where the code looks
    ]
    assert req["shm_size"] == container_spec.DEFAULT_SHM_SIZE and "ipc_mode" not in req
    assert "device_requests" not in req and "network_mode" not in req
    assert req["environment"] == {container_spec.IMAGE_ENV: "sd-darts:latest", container_spec.IMAGE_ID_ENV: IMAGE_ID}


def test_request_gpus_ipc_network_user_and_explicit_mounts(checkout, tmp_path):
    cache = tmp_path / "dvc-cache"
    cache.mkdir()
    req = request(
        checkout,
        gpus="0,1",
        ipc_host=True,
        network="none",
        user="1000:1000",
        data=[f"{checkout / 'data'}:/datasets"],
        volumes=[f"{cache}:/cache/dvc"],
    )
    assert req["device_requests"] == [{"device_ids": ["0", "1"], "capabilities": [["gpu"]]}]
    assert req["ipc_mode"] == "host" and "shm_size" not in req
    assert req["network_mode"] == "none" and req["user"] == "1000:1000"
    assert req["volumes"][1:] == [f"{checkout}/data:/datasets:ro", f"{cache.resolve()}:/cache/dvc:rw"]


def test_environment_passed_through_and_paths_mapped(checkout):
    environ = {
        "OMP_NUM_THREADS": "1",
        "SD_DARTS_PARAMS": "params.yaml",
        "DVC_ROOT": str(checkout),
        "HOME": "/root",
        "CUDA_VISIBLE_DEVICES": "3",
        container_spec.IMAGE_ID_ENV: "sha256:stale",
        "DVC_STUDIO_TOKEN": "isat_secret",  # secrets of the host stay there
        "DVC_STUDIO_URL": "https://studio.example",
        "SD_DARTS_SKIP_DOCKER": "1",
        "TORCH_HOME": "/home/me/.cache/torch",
    }
    req = container_spec.container_request(
        ["true"], image="x:1", image_id=IMAGE_ID, checkout=checkout, workdir=checkout, environ=environ, env={"A": "b"}
    )
    assert req["environment"] == {
        "OMP_NUM_THREADS": "1",
        "SD_DARTS_PARAMS": "params.yaml",
        "DVC_ROOT": container_spec.WORKDIR,
        "A": "b",
        container_spec.IMAGE_ENV: "x:1",
        container_spec.IMAGE_ID_ENV: IMAGE_ID,
    }


def test_request_refuses_missing_data_folder_and_workdir_outside_checkout(checkout, tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        request(checkout, data=[str(tmp_path / "nope")])
    with pytest.raises(UserError, match="not in the checkout"):
        request(checkout, workdir=tmp_path)
    with pytest.raises(UserError, match="malformed"):
        request(checkout, volumes=[f"{tmp_path}:relative"])
    with pytest.raises(UserError, match="--shm-size"):
        request(checkout, shm_size="lots")


@given(st.text(st.characters(codec="ascii", categories=["Lu", "Nd"], include_characters="_"), min_size=1))
def test_only_allow_listed_variables_are_passed(suffix):
    environ = {f"DVC_{suffix}": "x", f"SD_DARTS_{suffix}": "x", f"NCCL_{suffix}": "x", f"TORCH_{suffix}": "x"}
    passed = container_spec.passed_environment(environ, Path("/nowhere"))
    assert set(passed) == set(environ) & set(container_spec.PASS_ENV)


def test_data_path_with_colon_is_named_whole(checkout, tmp_path):
    colon = tmp_path / "p" / "data:colon"
    with pytest.raises(UserError, match=f"--data {colon}: no such file or folder"):
        request(checkout, data=[str(colon)])
    (tmp_path / "p").mkdir()
    with pytest.raises(UserError, match=f"--data {colon}: no such file or folder") as info:
        request(checkout, data=[str(colon)])  # not the folder p/data with a container path 'colon'
    assert "\n" not in str(info.value)
    colon.mkdir()
    with pytest.raises(UserError, match=f"--data {colon}: paths with ':'"):
        request(checkout, data=[str(colon)])
    with pytest.raises(UserError, match=f"--data {colon}: paths with ':'"):
        request(checkout, data=[f"{colon}:/data"])
    assert request(checkout, data=[f"{tmp_path / 'p'}:/data"])["volumes"][1] == f"{tmp_path / 'p'}:/data:ro"


def test_two_mounts_at_one_container_path_are_refused(checkout, tmp_path):
    with pytest.raises(UserError, match="is the checkout"):
        request(checkout, data=[str(checkout)])
    with pytest.raises(UserError, match=f"both be mounted at {container_spec.WORKDIR}"):
        request(checkout, data=[f"{tmp_path}:{container_spec.WORKDIR}/"])
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(UserError, match="both be mounted at /data"):
        request(checkout, data=[f"{checkout / 'data'}:/data"], volumes=[f"{other}:/data/./:ro"])
    with pytest.raises(UserError, match="both be mounted at"):
        request(checkout, data=[str(checkout / "data"), f"{other}:{container_spec.WORKDIR}/data"])
    assert len(request(checkout, data=[f"{checkout}:/src"])["volumes"]) == 2  # elsewhere: fine


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("all", {"count": -1, "capabilities": [["gpu"]]}),
        ("2", {"count": 2, "capabilities": [["gpu"]]}),
        ("0,1", {"device_ids": ["0", "1"], "capabilities": [["gpu"]]}),
        ("device=3", {"device_ids": ["3"], "capabilities": [["gpu"]]}),
        ("device=GPU-3f2a-11", {"device_ids": ["GPU-3f2a-11"], "capabilities": [["gpu"]]}),
        (None, None),
    ],
)
def test_gpu_request(spec, expected):
    assert container_spec.gpu_request(spec) == expected


@pytest.mark.parametrize("spec", ["0", "-1", "x", "1,,2", "all,0", "device=", "2 GPUs", "0;1"])
def test_gpu_request_malformed(spec):
    with pytest.raises(UserError, match="--gpus"):
        container_spec.gpu_request(spec)


@given(st.lists(st.integers(0, 15).map(str), min_size=2, max_size=8))
def test_gpu_ids_are_passed_as_given(ids):
    assert container_spec.gpu_request(",".join(ids))["device_ids"] == ids


@pytest.mark.parametrize(
    "name", ["sd-darts:latest", "sd-darts", "ghcr.io/org/sd-darts:v1.2", "localhost:5000/a/b_c:x", "sha256:" + "0" * 64]
)
def test_image_names_accepted(name):
    assert container_spec.check_image_name(name) == name


@pytest.mark.parametrize("name", ["Bad:Name", "", "a b", "sd-darts:", ":tag", "sd--darts/", "x:" + "t" * 200])
def test_image_names_refused(name):
    with pytest.raises(UserError, match="malformed"):
        container_spec.check_image_name(name)


# --------------------------------------------------------------------------------------------
# A container's life
# --------------------------------------------------------------------------------------------


def test_run_streams_output_returns_exit_code_and_removes(fake_sdk, checkout, tmp_path):
    import io

    client = FakeClient(exit_code=3)
    out, err = io.BytesIO(), io.BytesIO()
    code = container.run_in_image(
        ["python", "-c", "pass"], workdir=checkout, client=client, stdout=out, stderr=err, network="none"
    )
    assert code == 3
    (made,) = client.created
    assert made.started and made.removed
    assert client.attach_kwargs["demux"] and client.attach_kwargs["logs"]
    assert (out.getvalue(), err.getvalue()) == (b"out\n", b"err\n")
    assert made.request["image"] == IMAGE_ID and made.request["environment"][container_spec.IMAGE_ID_ENV] == IMAGE_ID
    assert made.request["command"] == ["python", "-c", "pass"] and made.request["network_mode"] == "none"


def test_failed_start_is_one_line_and_container_removed(fake_sdk, checkout):
    gpu = APIError('could not select device driver "" with capabilities: [[gpu]]')
    client = FakeClient(start_error=gpu)
    with pytest.raises(UserError, match="no GPU runtime") as info:
        container.run_in_image(["true"], gpus="all", workdir=checkout, client=client)
    assert "\n" not in str(info.value)
    assert client.created[0].removed and not client.created[0].started
    client = FakeClient(start_error=APIError("OCI runtime create failed:\nexec: nope"))
    with pytest.raises(UserError, match="could not start"):
        container.run_in_image(["nope"], workdir=checkout, client=client)
    assert client.created[0].removed


def test_interrupt_is_forwarded_then_container_removed(fake_sdk, checkout):
    def interrupted():
        yield (b"epoch 1\n", None)
        raise KeyboardInterrupt

    client = FakeClient()
    client.chunks = interrupted
    with pytest.raises(KeyboardInterrupt):
        container.run_in_image(["sd-darts", "search"], workdir=checkout, client=client, stdout=open(os.devnull, "wb"))
    assert client.created[0].killed == "SIGINT" and client.created[0].removed


def test_missing_image_says_how_to_build(fake_sdk, checkout):
    with pytest.raises(UserError, match="sd-darts container build --tag sd-darts:v2"):
        container.run_in_image(["true"], image="sd-darts:v2", workdir=checkout, client=FakeClient(images=()))


def test_image_provenance():
    assert container_spec.image_provenance({}) == {}
    env = {container_spec.IMAGE_ENV: "sd-darts:latest", container_spec.IMAGE_ID_ENV: IMAGE_ID}
    assert container_spec.image_provenance(env) == {"image": "sd-darts:latest", "image_id": IMAGE_ID}


def test_public_url_drops_credentials():
    assert container._public_url("https://user:tok@github.com/o/r.git") == "https://github.com/o/r.git"
    assert container._public_url("git@github.com:o/r.git") == "git@github.com:o/r.git"
    assert container._public_url("/home/me/sd-darts") is None and container._public_url("file:///x") is None


# --------------------------------------------------------------------------------------------
# Bad input through the CLI: one line, exit 2, nothing written
# --------------------------------------------------------------------------------------------


def _cli_error(argv, capsys, tmp_path, monkeypatch) -> str:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("sd-darts container: error:"), err
    assert list(work.iterdir()) == []
    return err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["container", "run", "--image", "Bad:Name", "--", "true"], "image name 'Bad:Name' is malformed"),
        (["container", "run", "--gpus", "0x", "--", "true"], "--gpus '0x' is malformed"),
        (["container", "run", "--gpus", "0", "--", "true"], "requests no GPU"),
        (["container", "run", "--"], "no command to run"),
        (["container", "run", "--data", "/no/such/folder", "--", "true"], "--data /no/such/folder"),
        (["container", "build", "--tag", "Sd-Darts"], "image name 'Sd-Darts' is malformed"),
    ],
)
def test_cli_bad_input(argv, message, capsys, tmp_path, monkeypatch):
    # no engine is asked: a daemon that is not there would give another message
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    assert message in _cli_error(argv, capsys, tmp_path, monkeypatch)


def test_cli_daemon_absent(capsys, tmp_path, monkeypatch):
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    err = _cli_error(["container", "run", "--", "true"], capsys, tmp_path, monkeypatch)
    assert f"no Docker daemon reachable at unix://{tmp_path}/absent.sock" in err and "DOCKER_HOST" in err


def test_cli_sdk_missing(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "docker", None)
    err = _cli_error(["container", "run", "--", "true"], capsys, tmp_path, monkeypatch)
    assert "pip install 'sd-darts[docker]'" in err


def test_build_without_dockerfile(capsys, tmp_path, monkeypatch):
    err = _cli_error(["container", "build", "--checkout", str(tmp_path)], capsys, tmp_path, monkeypatch)
    assert "no Dockerfile" in err


def test_dockerfile_dependency_layer_reads_only_pyproject_and_constraints():
    """The cached dependency layer is invalidated by pyproject.toml / constraints.txt only."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    copies = [ln for ln in lines if ln.startswith("COPY")]
    assert copies[0] == "COPY pyproject.toml constraints.txt /tmp/deps/"
    deps_run = next(i for i, ln in enumerate(lines) if ln.startswith("RUN pip install -c /tmp/deps/constraints.txt"))
    assert lines.index(copies[1]) > deps_run and copies[1].startswith("COPY --chown=")


def test_build_context_leaves_out_every_folder_git_ignores(tmp_path):
    """A folder .gitignore keeps out of the repository (a second venv, runs, data) must stay
    out of the image's build context too: CI once sent .venv-py3.12 (5 GB) to the daemon."""
    build = pytest.importorskip("docker.utils.build")
    root = ROOT
    folders = []
    for line in (root / ".gitignore").read_text().splitlines():
        line = line.strip()
        if line.endswith("/") and not line.startswith("#"):
            name = line.strip("/").replace("*", "x")
            folders.append(name)
            (tmp_path / name).mkdir(parents=True, exist_ok=True)
            (tmp_path / name / "file").write_text("x")
    (tmp_path / "sd_darts").mkdir()
    (tmp_path / "sd_darts" / "kept.py").write_text("x")
    patterns = [
        ln.strip() for ln in (root / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    context = build.exclude_paths(str(tmp_path), patterns)
    assert "sd_darts/kept.py" in context
    leaked = sorted(f"{name}/file" for name in folders if f"{name}/file" in context)
    assert not leaked, f"in the build context although .gitignore ignores them: {leaked}"
