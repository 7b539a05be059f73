#!/usr/bin/env bash
# The SLURM check: install slurm-wlm + munge (+ slurmdbd + mariadb-server for sacct) from Debian if
# missing, start a one-node cluster inside a private network namespace (scripts/slurm/in_netns.sh:
# loopback and an internal veth pair only), run the tests marked "slurm" against it, and stop every
# daemon by its PID whatever happens.  Root, Debian bookworm.
#   scripts/slurm_check.sh [PYTEST ARGS...]      SD_DARTS_SKIP_SLURM=1 skips it; ACCOUNTING=0: no slurmdbd
# Python: $PYTHON, else .venv/bin/python of the checkout, else python3.
set -euo pipefail
if [ "${SD_DARTS_SKIP_SLURM:-0}" = 1 ]; then echo "slurm check: skipped (SD_DARTS_SKIP_SLURM=1)"; exit 0; fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "slurm check: needs root (a private network namespace, unshare --net); run as root or set SD_DARTS_SKIP_SLURM=1" >&2; exit 2; }
export ACCOUNTING=${ACCOUNTING:-1}
PYTHON=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || command -v python3 )}
export PYTHON
t0=$(date +%s)
"$REPO/scripts/slurm/install.sh"
t1=$(date +%s)
ROOT=$(mktemp -d /tmp/sd-darts-slurm.XXXXXX)
export ROOT REPO
status=0
"$REPO/scripts/slurm/in_netns.sh" bash -c '
set -euo pipefail
trap "\"$REPO/scripts/slurm/stop.sh\"" EXIT
"$REPO/scripts/slurm/start.sh"
export SLURM_CONF=$ROOT/etc/slurm.conf
cd "$REPO"
DVC_NO_ANALYTICS=1 OMP_NUM_THREADS=1 "$PYTHON" -m pytest -q -m slurm -p no:cacheprovider "${@:-tests}"
' slurm_check "$@" || status=$?
t2=$(date +%s)
echo "slurm check: install $((t1 - t0)) s, cluster + tests $((t2 - t1)) s, total $((t2 - t0)) s (exit $status)"
if [ "$status" = 0 ]; then rm -rf "$ROOT"; else echo "slurm check: cluster logs kept in $ROOT/log" >&2; fi
exit "$status"
