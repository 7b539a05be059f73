#!/usr/bin/env bash
# The smoke profile: the whole DVC pipeline end to end on a CPU-only machine, offline
# (digits 16x16, tiny networks, few epochs; the NAS-Bench-201 query says "benchmark file not
# provided" unless params-smoke.yaml's data.nb201_benchmark exists), in a temporary clone of
# this repository (committed files plus your uncommitted changes) with params-smoke.yaml as
# params.yaml.  Nothing in this checkout is touched; the complete report is left in
# runs/smoke-report/ (README.md, tables, figures), written by `sd-darts report`, which never
# overwrites or deletes files it did not write.
#
#   bash scripts/smoke.sh [--out DIR] [--workdir DIR] [--update]
#     --out DIR      where to leave the report (default: runs/smoke-report)
#     --workdir DIR  make the clone in DIR/repo and keep it (default: a temporary folder, removed)
#     --committed    run the committed HEAD only, without your uncommitted changes
#     --update       also replace metrics/smoke/, metrics/headline/smoke/ and reports/smoke/ here (maintainers:
#                    refresh the committed smoke results that CI regenerates the report from;
#                    implies --committed, so that their provenance names a real revision): refused
#                    before anything runs if the working tree has uncommitted changes, and after
#                    the pipeline if any run records another revision or uncommitted code
# Progress: each stage of `dvc repro` as "stage k of n" with its time, elapsed time and an estimate.
# Environment: SD_DARTS_SKIP_SETUP=1 skips scripts/setup.sh (use the python/dvc on PATH).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT="$REPO/runs/smoke-report"
WORKDIR=""
UPDATE=0
COMMITTED=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
        --workdir) WORKDIR=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
        --committed) COMMITTED=1; shift ;;
        --update) UPDATE=1; COMMITTED=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "smoke.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ "$UPDATE" = 1 ]; then
    changes=$(git -C "$REPO" status --porcelain=v1 --untracked-files=normal)
    if [ -n "$changes" ]; then
        count=$(printf '%s\n' "$changes" | wc -l)
        first=$(printf '%s\n' "$changes" | head -n 1 | cut -c4-)
        echo "smoke.sh: --update refused: the working tree has $count uncommitted change(s) (e.g. $first); commit or stash them first, so that the committed smoke runs name the revision that made them" >&2
        exit 2
    fi
fi
if [ "${SD_DARTS_SKIP_SETUP:-0}" != 1 ]; then
    bash "$REPO/scripts/setup.sh"
fi
if [ -x "$REPO/.venv/bin/python" ]; then
    export PATH="$REPO/.venv/bin:$PATH"
fi
for tool in python dvc git; do
    command -v "$tool" >/dev/null || { echo "smoke.sh: '$tool' not found; run scripts/setup.sh first" >&2; exit 2; }
done
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export PYTHONDONTWRITEBYTECODE=1

if [ -n "$WORKDIR" ]; then
    WORK="$WORKDIR"
    rm -rf "$WORK/repo"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/sd-darts-smoke.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
fi

# A clone of HEAD plus the working tree's uncommitted changes (the runs record them as dirty).
git clone -q --no-hardlinks "$REPO" "$WORK/repo"
[ "$COMMITTED" = 1 ] || (
    cd "$REPO"
    git ls-files -z --modified --others --exclude-standard | while IFS= read -r -d '' f; do
        if [ -f "$f" ]; then mkdir -p "$WORK/repo/$(dirname "$f")" && cp -p "$f" "$WORK/repo/$f"; fi
    done
    git ls-files -z --deleted | while IFS= read -r -d '' f; do rm -f "$WORK/repo/$f"; done
)
cd "$WORK/repo"
# The clone's own code runs (pipelines/*.py would otherwise import the editable install's sd_darts).
export PYTHONPATH="$WORK/repo${PYTHONPATH:+:$PYTHONPATH}"
cp params-smoke.yaml params.yaml
start=$(date +%s)
python -m sd_darts check-params params.yaml
stages=$(dvc stage list --name-only | wc -l)
PYTHONUNBUFFERED=1 dvc repro 2>&1 | bash "$REPO/scripts/repro_progress.sh" "$stages"
end=$(date +%s)
for f in README.md table1_hyperparameters.md table2_cifar10.md table3_imagenet.md table4_nb201.md comparison.md \
         fig2_hessian.png fig4_cells.png fig5_warmup.png fig6_window.png search_curves.png; do
    test -s "reports/smoke/$f" || { echo "smoke.sh: the pipeline finished without reports/smoke/$f" >&2; exit 1; }
done

python -m sd_darts report --params params.yaml --out "$OUT"
if [ "$UPDATE" = 1 ]; then
    # Every committed smoke run must come from this revision, clean (DVC may restore a stage's
    # outputs made by another revision from its cache).
    python - "$(git rev-parse --short=12 HEAD)" <<'PY'
import json, pathlib, sys
rev = sys.argv[1]
bad = []
for path in sorted(pathlib.Path("metrics/smoke").rglob("provenance.json")):
    prov = json.loads(path.read_text())
    if prov.get("git_rev") != rev or prov.get("git_dirty") is not False:
        bad.append(f"{path.parent} ({prov.get('git_rev')}{'+dirty' if prov.get('git_dirty') else ''})")
if bad:
    sys.exit(f"smoke.sh: --update refused: {len(bad)} run(s) do not come from the clean revision {rev}: "
             + ", ".join(bad[:5]) + "; rerun them (dvc repro --force) or check why they were not rerun")
PY
    rm -rf "$REPO/reports/smoke" "$REPO/metrics/smoke" "$REPO/metrics/headline/smoke"
    mkdir -p "$REPO/reports" "$REPO/metrics/headline"
    cp -r reports/smoke "$REPO/reports/smoke"
    cp -r metrics/smoke "$REPO/metrics/smoke"
    cp -r metrics/headline/smoke "$REPO/metrics/headline/smoke"
    echo "smoke.sh: metrics/smoke/, metrics/headline/smoke/ and reports/smoke/ of $REPO updated" >&2
fi
echo "smoke pipeline: done in $((end - start)) s; report: $OUT/README.md"
