#!/usr/bin/env bash
# Install Debian's SLURM and munge (+ slurmdbd and MariaDB for sacct when ACCOUNTING=1) if missing.
# Root, Debian bookworm (slurm-wlm 22.05).  Prints how long it took.
set -euo pipefail
ACCOUNTING=${ACCOUNTING:-1}
t0=$(date +%s)
need=0
for c in sbatch slurmctld slurmd munged; do command -v "$c" >/dev/null || need=1; done
if [ "$ACCOUNTING" = 1 ]; then for c in slurmdbd mariadbd; do command -v "$c" >/dev/null || need=1; done; fi
if [ "$need" = 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "slurm install: SLURM is missing and this is not root; install slurm-wlm munge (or set SD_DARTS_SKIP_SLURM=1)" >&2; exit 2; }
  command -v apt-get >/dev/null || { echo "slurm install: SLURM is missing and there is no apt-get; install slurm-wlm munge yourself (or set SD_DARTS_SKIP_SLURM=1)" >&2; exit 2; }
  pkgs="slurm-wlm munge"; [ "$ACCOUNTING" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi
echo "slurm install: $(( $(date +%s) - t0 )) s"
