#!/usr/bin/env bash
# The test command: set up .venv if needed, run the test suite, lint the Dockerfile, then the pipeline checks
# (dvc dag, reports regenerate byte for byte, smoke pipeline end to end in a temporary clone).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# Fashion-MNIST, the real benchmark (Debian's dataset-fashion-mnist, 30 MB), for its few tests: installed
# where missing if this is root with apt-get; otherwise those tests skip and say why.
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } \
            || echo "test.sh: could not install dataset-fashion-mnist; its tests will skip" >&2
    else
        echo "test.sh: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist, as root); its tests will skip" >&2
    fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q "$@"
# The fast tests on Python 3.12 and 3.13 too (pyenv's, where installed; SD_DARTS_SKIP_PYTHONS=1 skips).
if [ "${SD_DARTS_SKIP_PYTHONS:-0}" != 1 ]; then
    bash scripts/python_versions.sh
fi
# The Dockerfile is linted; scripts/docker_check.sh below builds and runs it.
.venv/bin/hadolint Dockerfile
echo "hadolint: Dockerfile clean"
if [ -f scripts/pipeline_checks.sh ] && [ "${SD_DARTS_SKIP_PIPELINE_CHECKS:-0}" != 1 ]; then
    PATH="$PWD/.venv/bin:$PATH" bash scripts/pipeline_checks.sh
fi
# The `dvc plots show` page rendered offline by headless Chromium (Debian's, installed if missing;
# SD_DARTS_REQUIRE_BROWSER=0 lets a machine without it skip the check).
SD_DARTS_REQUIRE_BROWSER=${SD_DARTS_REQUIRE_BROWSER:-1} PATH="$PWD/.venv/bin:$PATH" bash scripts/plots_check.sh
# The slurm runner and `sd-darts pipeline submit` against a one-node SLURM in a private network
# namespace (SD_DARTS_SKIP_SLURM=1 skips it).
PATH="$PWD/.venv/bin:$PATH" bash scripts/slurm_check.sh
# The image built and run against a real Docker engine (SD_DARTS_SKIP_DOCKER=1 skips it).
if [ "${SD_DARTS_SKIP_DOCKER:-0}" != 1 ]; then
    PATH="$PWD/.venv/bin:$PATH" bash scripts/docker_check.sh
fi
