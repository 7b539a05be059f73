#!/usr/bin/env bash
# The test command: set up .venv if needed, run the test suite, lint the Dockerfile, then the pipeline checks
# (dvc dag, reports regenerate byte for byte, smoke pipeline end to end in a temporary clone).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
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
