# sd-darts: the environment to run the package and its DVC pipeline, on CPU or NVIDIA GPUs.
# The PyTorch wheels bundle CUDA and cuDNN; the host needs only the NVIDIA driver and the NVIDIA
# Container Toolkit.  Build and run (docs/container.md):
#
#   sd-darts container build                        # or: docker build -t sd-darts:latest .
#   sd-darts container run --gpus all -- dvc repro  # or: docker run --rm --gpus all --ipc=host \
#       --user "$(id -u):$(id -g)" -v "$PWD":/workspace/sd-darts sd-darts:latest dvc repro
#
# Mount your checkout (with its .git) on /workspace/sd-darts: DVC needs the git repository, and
# the package is installed in editable mode from that path, so the mounted code is what runs.
#
# BASE_IMAGE: the official Python image of Debian bookworm by default (the same Debian and
# Python 3.11 as the base that scripts/docker_check.sh bootstraps without a registry).  Any
# Debian bookworm image with python3 and python3-venv works.
ARG BASE_IMAGE=python:3.11.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=180 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    SD_DARTS_SKIP_SETUP=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache

# git: DVC pipelines and experiments live in a git repository (mounted from the host, hence
# safe.directory).  tini: PID 1 that forwards signals (Ctrl-C reaches the run, which keeps its
# last checkpoint) and reaps DataLoader workers.  A virtual environment keeps pip off the
# system Python.  uid 1000 is the default user; `sd-darts container run` runs as the caller.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* tini=0.19.* \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*' \
    && python3 -m venv /opt/venv \
    && useradd --uid 1000 --no-create-home --home-dir /tmp sd-darts \
    && install -d -o 1000 -g 1000 /workspace/sd-darts

WORKDIR /workspace/sd-darts

# Dependencies (the large, cached layer): only pyproject.toml and constraints.txt invalidate it.
# torch/torchvision first, at the versions constraints.txt pins (as scripts/setup.sh installs
# them), then the package's own dependencies and extras as pyproject.toml lists them, then the
# reference implementations used by tests and benchmarks (no dependencies, as in setup.sh).
COPY pyproject.toml constraints.txt /tmp/deps/
# TORCH_INDEX_URL: another wheel index for torch/torchvision, e.g. https://download.pytorch.org/whl/cu128
# for hosts whose NVIDIA driver runs CUDA 12 only (the pinned build is CUDA 13; README).
ARG TORCH_INDEX_URL=""
RUN pip install -c /tmp/deps/constraints.txt ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch torchvision \
    && python -c "import tomllib; p = tomllib.load(open('/tmp/deps/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['dev'] + p['optional-dependencies']['pipeline']))" \
        > /tmp/deps/requirements.txt \
    && pip install -c /tmp/deps/constraints.txt -r /tmp/deps/requirements.txt \
    && pip install --no-deps nas-bench-201==2.1 xautodl==1.0.0

# The code (seconds to rebuild), installed in editable mode so that a mounted checkout runs.
COPY --chown=1000:1000 . .
RUN pip install --no-deps -e . && sd-darts --version

# OCI labels last, so that a new revision does not invalidate the layers above.
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="sd-darts" \
      org.opencontainers.image.description="SD-DARTS: differentiable architecture search with self-distillation (Zhu et al., 2023)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

USER 1000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["sd-darts", "--help"]
