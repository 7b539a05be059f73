#!/usr/bin/env bash
# One profile of the DVC pipeline end to end, offline, in a temporary clone of this repository
# (committed files plus your uncommitted changes) with the profile's params file as params.yaml.
# Nothing in this checkout is touched; the complete report is left in runs/<profile>-report/
# (README.md, tables, figures), written by `sd-darts report`, which never overwrites or deletes
# files it did not write.  scripts/smoke.sh and scripts/fmnist.sh call it.
#
#   bash scripts/profile.sh --params FILE [--stages "A B ..."] [--jobs N] [--out DIR] [--workdir DIR [--resume]]
#                           [--committed] [--update]
#     --params FILE  the profile's params file (params-smoke.yaml, params-fmnist.yaml)
#     --stages LIST  run only these stages and their matrix items, in this order (dvc repro -s);
#                    default: the whole pipeline (dvc repro)
#     --jobs N       run up to N stages at a time, each with 1/N of OMP_NUM_THREADS (sd-darts pipeline run
#                    --jobs N, which records them in dvc.lock as dvc repro does); default: dvc repro, one
#                    stage at a time
#     --out DIR      where to leave the report (default: runs/<profile>-report)
#     --workdir DIR  make the clone in DIR/repo and keep it (default: a temporary folder, removed)
#     --resume       with --workdir: keep an existing DIR/repo of the same revision and go on where an
#                    interrupted run stopped (finished stages are skipped, runs resume from their
#                    checkpoints); without it, DIR/repo is made afresh
#     --committed    run the committed HEAD only, without your uncommitted changes
#     --update       also replace metrics/<profile>/, metrics/headline/<profile>/ and reports/<profile>/
#                    here (maintainers: refresh the committed results that CI regenerates the
#                    report from; implies --committed, so that their provenance names a real
#                    revision): refused before anything runs if the working tree has uncommitted
#                    changes, and after the pipeline if any run records another revision or
#                    uncommitted code
# Progress: each stage of `dvc repro` as "stage k of n" with its time, elapsed time and an estimate
# (with --jobs: each stage's start and end, its time and the elapsed time).
# Environment: SD_DARTS_SKIP_SETUP=1 skips scripts/setup.sh (use the python/dvc on PATH).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
NAME=${SD_DARTS_SCRIPT_NAME:-profile.sh}
OUT=""
PARAMS=""
STAGES=""
WORKDIR=""
UPDATE=0
JOBS=""
RESUME=0
COMMITTED=0
while [ $# -gt 0 ]; do
    case "$1" in
        --params) PARAMS="$2"; shift 2 ;;
        --stages) STAGES="$2"; shift 2 ;;
        --jobs) JOBS="$2"; shift 2 ;;
        --out) OUT=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
        --workdir) WORKDIR=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
        --committed) COMMITTED=1; shift ;;
        --resume) RESUME=1; shift ;;
        --update) UPDATE=1; COMMITTED=1; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "$NAME: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$PARAMS" ] || { echo "$NAME: --params FILE is required (see --help)" >&2; exit 2; }
[ -f "$REPO/$PARAMS" ] || { echo "$NAME: params file $PARAMS is not in $REPO" >&2; exit 2; }
PROFILE=$(sed -n 's/^profile: *\([A-Za-z0-9_-]*\).*/\1/p' "$REPO/$PARAMS" | head -n 1)
[ -n "$PROFILE" ] || { echo "$NAME: $PARAMS has no 'profile:' line" >&2; exit 2; }
[ -n "$OUT" ] || OUT="$REPO/runs/$PROFILE-report"
if [ "$UPDATE" = 1 ]; then
    changes=$(git -C "$REPO" status --porcelain=v1 --untracked-files=normal)
    if [ -n "$changes" ]; then
        count=$(printf '%s\n' "$changes" | wc -l)
        first=$(printf '%s\n' "$changes" | head -n 1 | cut -c4-)
        echo "$NAME: --update refused: the working tree has $count uncommitted change(s) (e.g. $first); commit or stash them first, so that the committed runs name the revision that made them" >&2
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
    command -v "$tool" >/dev/null || { echo "$NAME: '$tool' not found; run scripts/setup.sh first" >&2; exit 2; }
done
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export PYTHONDONTWRITEBYTECODE=1

RESUMING=0
if [ -n "$WORKDIR" ]; then
    WORK="$WORKDIR"
    if [ "$RESUME" = 1 ] && [ -d "$WORK/repo/.git" ]; then
        here=$(git -C "$REPO" rev-parse HEAD) there=$(git -C "$WORK/repo" rev-parse HEAD)
        [ "$here" = "$there" ] || { echo "$NAME: --resume refused: $WORK/repo is at ${there:0:12}, this checkout at ${here:0:12}; drop --resume to start afresh" >&2; exit 2; }
        RESUMING=1
    else
        rm -rf "$WORK/repo"
    fi
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/sd-darts-$PROFILE.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
fi

# A clone of HEAD plus the working tree's uncommitted changes (the runs record them as dirty).
[ "$RESUMING" = 1 ] || git clone -q --no-hardlinks "$REPO" "$WORK/repo"
[ "$COMMITTED" = 1 ] || [ "$RESUMING" = 1 ] || (
    cd "$REPO"
    git ls-files -z --modified --others --exclude-standard | while IFS= read -r -d '' f; do
        if [ -f "$f" ]; then mkdir -p "$WORK/repo/$(dirname "$f")" && cp -p "$f" "$WORK/repo/$f"; fi
    done
    git ls-files -z --deleted | while IFS= read -r -d '' f; do rm -f "$WORK/repo/$f"; done
)
cd "$WORK/repo"
# The clone's own code runs, not the editable install's sd_darts in $REPO.
export PYTHONPATH="$WORK/repo${PYTHONPATH:+:$PYTHONPATH}"
cp "$PARAMS" params.yaml
start=$(date +%s)
python -m sd_darts check-params params.yaml
if [ -n "$JOBS" ]; then
    # shellcheck disable=SC2086
    PYTHONUNBUFFERED=1 python -m sd_darts pipeline run --jobs "$JOBS" ${STAGES:+--single-item --stages $STAGES}
elif [ -z "$STAGES" ]; then
    stages=$(dvc stage list --name-only | wc -l)
    PYTHONUNBUFFERED=1 dvc repro 2>&1 | bash "$REPO/scripts/repro_progress.sh" "$stages"
else
    # each named stage with its matrix items ("search" is every search@...), in the given order
    pattern=$(printf '%s\n' $STAGES | sed 's/.*/^&(@|$)/' | paste -sd'|')
    stages=$(dvc stage list --name-only | grep -Ec "$pattern" || true)
    # shellcheck disable=SC2086
    PYTHONUNBUFFERED=1 dvc repro -s $STAGES 2>&1 | bash "$REPO/scripts/repro_progress.sh" "$stages"
fi
end=$(date +%s)
for f in README.md table1_hyperparameters.md table2_cifar10.md methods.md comparison.md \
         fig2_hessian.png fig4_cells.png search_curves.png; do
    test -s "reports/$PROFILE/$f" || { echo "$NAME: the pipeline finished without reports/$PROFILE/$f" >&2; exit 1; }
done

python -m sd_darts report --params params.yaml --out "$OUT"
if [ "$UPDATE" = 1 ]; then
    # Every committed run must come from this revision, clean (DVC may restore a stage's
    # outputs made by another revision from its cache).
    python - "$(git rev-parse --short=12 HEAD)" "$PROFILE" "$NAME" <<'PY'
import json, pathlib, sys
rev = sys.argv[1]
bad = []
for path in sorted(pathlib.Path("metrics", sys.argv[2]).rglob("provenance.json")):
    prov = json.loads(path.read_text())
    if prov.get("git_rev") != rev or prov.get("git_dirty") is not False:
        bad.append(f"{path.parent} ({prov.get('git_rev')}{'+dirty' if prov.get('git_dirty') else ''})")
if bad:
    sys.exit(f"{sys.argv[3]}: --update refused: {len(bad)} run(s) do not come from the clean revision {rev}: "
             + ", ".join(bad[:5]) + "; rerun them (dvc repro --force) or check why they were not rerun")
PY
    rm -rf "$REPO/reports/$PROFILE" "$REPO/metrics/$PROFILE" "$REPO/metrics/headline/$PROFILE"
    mkdir -p "$REPO/reports" "$REPO/metrics/headline"
    cp -r "reports/$PROFILE" "$REPO/reports/$PROFILE"
    cp -r "metrics/$PROFILE" "$REPO/metrics/$PROFILE"
    cp -r "metrics/headline/$PROFILE" "$REPO/metrics/headline/$PROFILE"
    echo "$NAME: metrics/$PROFILE/, metrics/headline/$PROFILE/ and reports/$PROFILE/ of $REPO updated" >&2
fi
echo "$PROFILE pipeline: done in $((end - start)) s; report: $OUT/README.md"
