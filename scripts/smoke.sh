#!/usr/bin/env bash
# The smoke profile: the whole DVC pipeline end to end on a CPU-only machine, offline, in
# minutes (digits 16x16, tiny networks, few epochs; NAS-Bench-201 query "not provided"
# unless params-smoke.yaml's nb201_query.benchmark exists).  It runs in a temporary clone of
# this repository (committed files plus your uncommitted changes) with params-smoke.yaml as
# params.yaml, so nothing here is touched, and leaves the complete report in runs/smoke/.
#
#   scripts/smoke.sh [--out DIR] [--keep] [--update]
#     --out DIR   where to leave reports/ and metrics/ (default: runs/smoke)
#     --keep      keep the temporary clone (its path is printed)
#     --update    also copy metrics/ and reports/ into this repository (maintainers: refresh
#                 the committed smoke results that CI regenerates the report from)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT="$REPO/runs/smoke"
KEEP=0
UPDATE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
        --keep) KEEP=1; shift ;;
        --update) UPDATE=1; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "smoke.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -x "$REPO/.venv/bin/python" ]; then
    export PATH="$REPO/.venv/bin:$PATH"
fi
for tool in python dvc git; do
    command -v "$tool" >/dev/null || { echo "smoke.sh: '$tool' not found; run scripts/setup.sh first" >&2; exit 2; }
done
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export PYTHONDONTWRITEBYTECODE=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sd-darts-smoke.XXXXXX")
cleanup() { if [ "$KEEP" = 1 ]; then echo "smoke.sh: clone kept in $WORK/repo" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# A clone of HEAD plus the working tree's uncommitted changes (the runs record them as dirty).
git clone -q --no-hardlinks "$REPO" "$WORK/repo"
(
    cd "$REPO"
    git ls-files -z --modified --others --exclude-standard | while IFS= read -r -d '' f; do
        if [ -f "$f" ]; then mkdir -p "$WORK/repo/$(dirname "$f")" && cp -p "$f" "$WORK/repo/$f"; fi
    done
    git ls-files -z --deleted | while IFS= read -r -d '' f; do rm -f "$WORK/repo/$f"; done
)
cd "$WORK/repo"
cp params-smoke.yaml params.yaml
start=$(date +%s)
python -m sd_darts check-params params.yaml
dvc repro --quiet
python -m sd_darts check-params params.yaml >/dev/null
test -f reports/README.md || { echo "smoke.sh: the pipeline finished without reports/README.md" >&2; exit 1; }
end=$(date +%s)

mkdir -p "$OUT"
rm -rf "$OUT/reports" "$OUT/metrics"
cp -r reports metrics "$OUT/"
if [ "$UPDATE" = 1 ]; then
    rm -rf "$REPO/reports" "$REPO/metrics"
    cp -r reports metrics "$REPO/"
    echo "smoke.sh: metrics/ and reports/ of this repository updated" >&2
fi
echo "smoke pipeline done in $((end - start)) s: report in $OUT/reports/README.md"
