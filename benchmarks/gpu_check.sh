#!/usr/bin/env bash
# The one script to run on a GPU host: every search-step timing at the paper's
# settings (batch 64, C = 16, 8 cells; the xautodl peers at their sizes), the same with bf16
# autocast, the CUDA-only tests (CUDA-graph replay without host synchronisation) and a 300-step
# fast-vs-reference trajectory check.  Finishes in under 8 minutes on one H100/H200-class GPU
# (each stage has its own time limit).  Writes JSON (and logs) into OUT_DIR:
#
#   search_step.json        benchmarks/search_step.py, fp32 (all variants, interleaved)
#   search_step_bf16.json   the fused variants with bf16 autocast
#   trajectory.json         benchmarks/trajectory_check.py (reference vs fused vs CUDA graph)
#   pytest_cuda.txt         tests that need CUDA
#   env.txt                 nvidia-smi, torch and CUDA versions
#
# Usage: benchmarks/gpu_check.sh OUT_DIR      (PYTHON=... to choose the interpreter; it needs
# torch with CUDA, this package's requirements, pytest and xautodl for the peer variants)
set -uo pipefail

out="${1:?usage: benchmarks/gpu_check.sh OUT_DIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
cd "$here"
status=0
began=$SECONDS

stage() {  # stage NAME SECONDS CMD... : run with a time limit, log, remember failures
    local name="$1" limit="$2"
    shift 2
    local t0=$SECONDS
    if timeout --kill-after=10 "$limit" "$@"; then
        echo "[gpu_check] $name: ok in $((SECONDS - t0)) s" >&2
    else
        echo "[gpu_check] $name: FAILED (exit $?) after $((SECONDS - t0)) s" >&2
        status=1
    fi
}

{
    nvidia-smi || true
    "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), torch.cuda.get_device_name(0))'
} >"$out/env.txt" 2>&1

stage "cuda tests" 60 "$PYTHON" -m pytest -q -p no:cacheprovider "$root/tests/search/test_step.py" -k cuda \
    >"$out/pytest_cuda.txt" 2>&1
stage "timings fp32" 150 "$PYTHON" search_step.py --device cuda --space all --batch-size 64 --init-channels 16 --layers 8 \
    --seeds 4 --rounds 10 --warmup-steps 3 --out "$out/search_step.json" >"$out/search_step.log" 2>&1
stage "timings bf16" 50 "$PYTHON" search_step.py --device cuda --space all --batch-size 64 --init-channels 16 --layers 8 \
    --seeds 4 --rounds 10 --warmup-steps 3 --amp bf16 --no-memory \
    --variants darts-fused,darts-fused-graph,darts-stacked,nb201-fused,nb201-fused-graph --out "$out/search_step_bf16.json" \
    >"$out/search_step_bf16.log" 2>&1
stage "trajectory 300 steps" 200 "$PYTHON" trajectory_check.py --device cuda --steps 300 --batch-size 64 \
    --init-channels 16 --layers 8 --dtype float32 --deadline-s 100 --out "$out/trajectory.json" >"$out/trajectory.log" 2>&1

echo "[gpu_check] done in $((SECONDS - began)) s; results in $out" >&2
exit $status
