#!/usr/bin/env bash
# The smoke profile: the whole DVC pipeline end to end on a CPU-only machine, offline, in minutes
# (digits 16x16, tiny networks, few epochs; the NAS-Bench-201 query says "benchmark file not
# provided" unless params-smoke.yaml's data.nb201_benchmark exists).  Its numbers check that every
# stage runs and the report is complete; they say nothing about the paper's results.
#
#   bash scripts/smoke.sh [--out DIR] [--workdir DIR [--resume]] [--committed] [--update]
# Options as scripts/profile.sh (--help); the report is left in runs/smoke-report/.
export SD_DARTS_SCRIPT_NAME=smoke.sh
exec bash "$(dirname "$0")/profile.sh" --params params-smoke.yaml "$@"
