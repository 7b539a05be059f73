#!/usr/bin/env bash
# Pipeline checks run by CI after the test suite (scripts/test.sh):
#   1. the pipeline is valid: every committed params file (params.yaml, params-*.yaml) passes
#      check-params, `dvc dag` resolves dvc.yaml;
#   2. reports/<profile>/ regenerates byte for byte from the committed metrics/<profile>/ for every
#      profile (git diff --exit-code);
#   3. the smoke pipeline runs end to end (`dvc repro`) in a temporary clone and leaves a report;
#   4. in that clone, DVC shows the results where its users look (`dvc metrics show`, `dvc plots
#      show`, `dvc exp show` with metrics columns), results are shared through a DVC remote (a
#      local folder: push, then a second clone pulls data, checkpoints and results and finds
#      nothing to rerun), a sweep runs through the experiment queue (`dvc exp run --queue -S
#      ...`, `dvc queue start -j 2`), and a search.window sweep fits `dvc exp show --only-changed`
#      in 30 columns.
# Environment: SD_DARTS_SKIP_SMOKE=1 stops after step 2 (quick local check).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
if [ -x "$REPO/.venv/bin/python" ]; then
    export PATH="$REPO/.venv/bin:$PATH"
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export PYTHONDONTWRITEBYTECODE=1
say() { printf '\n== pipeline check: %s\n' "$*" >&2; }
fail() { echo "pipeline check FAILED: $*" >&2; exit 1; }

say "1/4 params files and dvc.yaml are valid"
mapfile -t PARAMS_FILES < <(git ls-files 'params.yaml' 'params-*.yaml')
for f in "${PARAMS_FILES[@]}"; do python -m sd_darts check-params "$f"; done
dvc dag --md >/dev/null || fail "dvc dag could not resolve dvc.yaml"

say "2/4 reports/<profile>/ regenerates byte for byte from the committed metrics/<profile>/"
for f in "${PARAMS_FILES[@]}"; do python -m sd_darts report --params "$f"; done
git diff --exit-code --stat -- reports/ || fail "reports/ differs from what metrics/ regenerates; run 'sd-darts report --params FILE' and commit"
untracked=$(git ls-files --others --exclude-standard -- reports/)
[ -z "$untracked" ] || fail "reports/ has files that are not committed: $untracked"
# The same through DVC in a fresh clone of HEAD: `dvc repro -s report` (the report stage alone;
# its inputs are the committed metrics) leaves reports/ as committed.
fresh=$(mktemp -d "${TMPDIR:-/tmp}/sd-darts-fresh.XXXXXX")
git clone -q . "$fresh/repo"
(cd "$fresh/repo" && dvc repro -q -s report >/dev/null && git diff --exit-code --stat -- reports/) \
    || { rm -rf "$fresh"; fail "dvc repro -s report in a fresh clone does not regenerate the committed reports/paper/"; }
rm -rf "$fresh"

if [ "${SD_DARTS_SKIP_SMOKE:-0}" = 1 ]; then
    echo "pipeline checks 1-2 passed (smoke pipeline skipped: SD_DARTS_SKIP_SMOKE=1)"
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sd-darts-checks.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

say "3/4 smoke pipeline end to end (dvc repro) in a temporary clone"
SD_DARTS_SKIP_SETUP=1 bash scripts/smoke.sh --workdir "$WORK" --out "$WORK/report"
test -s "$WORK/report/README.md" || fail "the smoke pipeline left no report"
grep -q "Profile: \*\*smoke\*\*" "$WORK/report/README.md" || fail "the smoke report does not say its profile"

say "4/4 DVC shows the results; sharing results through a DVC remote; a sweep through the experiment queue"
cd "$WORK/repo"
dvc metrics show --md > "$WORK/metrics.md" 2> "$WORK/metrics.err"
! grep -q "failed to load" "$WORK/metrics.err" || fail "dvc metrics show failed to load some metrics: $(cat "$WORK/metrics.err")"
for key in supernet_valid_acc eigenvalue skip_connections test_error params_m finished_runs; do
    grep -q "$key" "$WORK/metrics.md" || fail "dvc metrics show lacks $key"
done
grep -q "metrics/headline/smoke/train_cifar/selected-s0.json" "$WORK/metrics.md" || fail "dvc metrics show lacks the CIFAR-10 runs"
dvc plots show --json > "$WORK/plots.json" || fail "dvc plots show failed"
python - "$WORK/plots.json" <<'PY' || fail "dvc plots show lacks the search or training curves"
import json, sys
data = json.load(open(sys.argv[1]))
assert not data.get("errors"), data["errors"]
names = " ".join(data["data"])
assert "fig2_hessian_eigenvalue" in names and "train_test_error" in names, names
PY
# an identity for the commits of this throw-away clone (DVC experiments commit too)
git config user.name "sd-darts pipeline checks"
git config user.email "pipeline-checks@sd-darts.invalid"
git add -A >/dev/null
git commit -q -m "smoke results"
dvc remote add -q -d shared "$WORK/remote"
git commit -q -m "DVC remote" .dvc/config
dvc push -q
git clone -q "$WORK/repo" "$WORK/machine2"
(
    cd "$WORK/machine2"
    dvc pull -q
    test -f runs/smoke/search/sd-darts-s0/checkpoint.pt || fail "dvc pull did not bring the search checkpoints"
    status=$(dvc status --json)
    [ "$status" = "{}" ] || fail "after dvc pull the second clone would rerun: $status"
)
dvc exp run --queue -q -S "report.title=sweep A" >/dev/null
dvc exp run --queue -q -S "report.title=sweep B" >/dev/null
dvc queue start -j 2 >/dev/null
queue=""
for _ in $(seq 1 120); do
    queue=$(dvc queue status 2>&1 || true)
    case "$queue" in *Queued*|*Running*) sleep 5 ;; *) break ;; esac
done
echo "$queue"
case "$queue" in
    *Failed*|*Queued*|*Running*) fail "the queued experiments did not all succeed" ;;
esac
[ "$(grep -c Success <<<"$queue")" -ge 2 ] || fail "the queued experiments did not run"
dvc queue stop >/dev/null 2>&1 || true
dvc exp show --no-pager --md > "$WORK/exps.md"
grep -q "sweep A" "$WORK/exps.md" && grep -q "sweep B" "$WORK/exps.md" || fail "the sweep's experiments are missing from dvc exp show"
grep -q "supernet_valid_acc" "$WORK/exps.md" || fail "dvc exp show has no metrics columns"
# A one-parameter sweep of the search (K = 3) is compared at a glance: `dvc exp show
# --only-changed` has at most 30 columns (metadata, the swept param, the numbers it changed).
dvc exp run -q -S search.window=3 >/dev/null || fail "dvc exp run -S search.window=3 failed"
dvc exp show --only-changed --csv > "$WORK/changed.csv" || fail "dvc exp show --only-changed failed"
columns=$(head -n 1 "$WORK/changed.csv" | tr , '\n' | wc -l)
echo "dvc exp show --only-changed after the search.window sweep: $columns columns"
head -n 1 "$WORK/changed.csv" | grep -q "search.window" || fail "dvc exp show --only-changed lacks search.window"
[ "$columns" -le 30 ] || fail "dvc exp show --only-changed has $columns columns (at most 30): $(head -n 1 "$WORK/changed.csv")"
echo "pipeline checks passed"
