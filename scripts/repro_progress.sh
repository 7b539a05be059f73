#!/usr/bin/env bash
# Progress of `dvc repro`: reads its output on stdin, passes it through, and at each stage DVC
# starts (runs, skips or restores) says on stderr which stage of how many it is, the time taken
# by the stage before, the time elapsed and an estimate of the time left; at the end, the time of
# the last stage and the total.
#
#   dvc repro 2>&1 | bash scripts/repro_progress.sh N     (N: the number of stages, `dvc stage list`)
set -uo pipefail
total=${1:?usage: repro_progress.sh NUMBER_OF_STAGES}
start=$(date +%s)
k=0
prev=""
prev_start=$start
stage_re="[Ss]tage '([^']+)'"
while IFS= read -r line; do
    printf '%s\n' "$line"
    if [[ $line =~ $stage_re ]] && [ "${BASH_REMATCH[1]}" != "$prev" ]; then
        now=$(date +%s)
        [ -z "$prev" ] || echo "[progress] stage $prev took $((now - prev_start)) s" >&2
        k=$((k + 1))
        prev=${BASH_REMATCH[1]}
        prev_start=$now
        elapsed=$((now - start))
        if [ "$k" -gt 1 ]; then
            estimate="about $((elapsed * (total - k + 1) / (k - 1))) s left"
        else
            estimate="no estimate yet"
        fi
        echo "[progress] stage $k of $total: $prev (elapsed $elapsed s, $estimate)" >&2
    fi
done
now=$(date +%s)
[ -z "$prev" ] || echo "[progress] stage $prev took $((now - prev_start)) s" >&2
echo "[progress] $k of $total stages done in $((now - start)) s" >&2
