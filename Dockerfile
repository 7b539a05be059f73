# sd-darts: the environment to run the package and its DVC pipeline, on CPU or NVIDIA GPUs.
# The PyTorch wheels bundle CUDA; the host needs only the NVIDIA driver and container toolkit.
#
#   docker build -t sd-darts .
#   docker run --rm --gpus all --user "$(id -u):$(id -g)" -v "$PWD":/workspace/sd-darts sd-darts dvc repro
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD":/workspace/sd-darts sd-darts bash scripts/smoke.sh
#
# Mount your checkout (with its .git) on /workspace/sd-darts: DVC needs the git repository, and
# the package is installed in editable mode from that path, so the mounted code is what runs.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SD_DARTS_SKIP_SETUP=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache

# git: DVC pipelines and experiments live in a git repository.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

WORKDIR /workspace/sd-darts

# Dependencies first (cached layer): torch pinned as in scripts/setup.sh, the rest by constraints.txt.
COPY pyproject.toml constraints.txt README.md ./
COPY sd_darts/__init__.py sd_darts/__init__.py
RUN pip install torch==2.14.1 torchvision==0.29.1 \
    && pip install -c constraints.txt -e ".[dev,pipeline]" \
    && pip install --no-deps nas-bench-201==2.1

COPY . .

RUN useradd --create-home --uid 1000 sd-darts && chown -R sd-darts /workspace
USER 1000

CMD ["sd-darts", "--help"]
