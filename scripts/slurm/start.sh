#!/usr/bin/env bash
# Start a one-node SLURM cluster as plain background processes (no systemd): munged [+ mariadbd +
# slurmdbd with ACCOUNTING=1] + slurmctld + slurmd, everything under $ROOT.  Run it inside
# in_netns.sh (it refuses to start where a default route exists).  PIDs: $ROOT/run/<daemon>.launch.pid,
# which stop.sh kills, and only those.  Then: export SLURM_CONF=$ROOT/etc/slurm.conf
#   ROOT=/tmp/x ACCOUNTING=1 scripts/slurm/start.sh
set -euo pipefail
ROOT=${ROOT:?set ROOT to an empty folder for the cluster}
ACCOUNTING=${ACCOUNTING:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
t0=$(date +%s.%N)
if [ -n "$(ip route show default 2>/dev/null)" ] || [ -n "$(ip -6 route show default 2>/dev/null)" ]; then
  echo "slurm start: this network namespace has a default route; run inside scripts/slurm/in_netns.sh" >&2; exit 2
fi
mkdir -p "$ROOT"/{etc,run,state,spool/localhost,log,munge,fakegpu}
chmod 0755 "$ROOT" "$ROOT/run"; chmod 0700 "$ROOT/munge"
for i in 0 1; do [ -c "$ROOT/fakegpu/nvidia$i" ] || { rm -f "$ROOT/fakegpu/nvidia$i"; mknod "$ROOT/fakegpu/nvidia$i" c 1 3; }; done
acct=accounting_storage/none; [ "$ACCOUNTING" = 1 ] && acct=accounting_storage/slurmdbd
fill() { sed -e "s#@ROOT@#$ROOT#g" -e "s#@ACCT@#$acct#g" -e "s#@CPUS@#$(nproc)#g" "$1"; }
fill "$HERE/slurm.conf.in" > "$ROOT/etc/slurm.conf"
fill "$HERE/gres.conf.in" > "$ROOT/etc/gres.conf"   # read from the folder of slurm.conf
[ -s "$ROOT/munge/munge.key" ] || { head -c 1024 /dev/urandom > "$ROOT/munge/munge.key"; chmod 0400 "$ROOT/munge/munge.key"; }
export SLURM_CONF="$ROOT/etc/slurm.conf"

launch() { local name=$1; shift; "$@" >>"$ROOT/log/$name.out" 2>&1 & echo $! > "$ROOT/run/$name.launch.pid"; }
# up NAME CHECK: poll CHECK for 30 s at most; stop at once when daemon NAME died
up() {
  local pid; pid=$(cat "$ROOT/run/$1.launch.pid")
  for _ in $(seq 300); do
    eval "$2" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { echo "slurm start: $1 died; its log:" >&2; tail -n 5 "$ROOT/log/$1.out" >&2; exit 1; }
    sleep 0.1
  done
  echo "slurm start: $1 not up after 30 s; its log:" >&2; tail -n 5 "$ROOT/log/$1.out" >&2; exit 1
}
sock="$ROOT/run/munge.socket.2"
launch munged munged -F --force --key-file="$ROOT/munge/munge.key" --socket="$sock" \
  --pid-file="$ROOT/run/munged.pid" --log-file="$ROOT/log/munged.log" --seed-file="$ROOT/munge/munged.seed"
up munged "munge -S $sock -n | unmunge -S $sock"

if [ "$ACCOUNTING" = 1 ]; then
  if [ ! -d "$ROOT/mysql/data/mysql" ]; then
    mkdir -p "$ROOT/mysql/data"
    mariadb-install-db --no-defaults --user=root --datadir="$ROOT/mysql/data" \
      --auth-root-authentication-method=normal >"$ROOT/log/mariadb-install.out" 2>&1
  fi
  launch mariadbd mariadbd --no-defaults --user=root --datadir="$ROOT/mysql/data" --socket="$ROOT/run/mysqld.sock" \
    --pid-file="$ROOT/run/mysqld.pid" --bind-address=127.0.0.1 --port=13306 --skip-grant-tables \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=16M --log-error="$ROOT/log/mariadbd.log"
  up mariadbd "mariadb --no-defaults -S $ROOT/run/mysqld.sock -e 'select 1'"
  # slurmdbd reads slurmdbd.conf beside $SLURM_CONF, and dies in a namespace when that slurm.conf
  # has NoInAddrAny: it gets a folder of its own with a copy without CommunicationParameters
  mkdir -p "$ROOT/etc/dbd"
  grep -v '^CommunicationParameters' "$ROOT/etc/slurm.conf" > "$ROOT/etc/dbd/slurm.conf"
  fill "$HERE/slurmdbd.conf.in" > "$ROOT/etc/dbd/slurmdbd.conf"; chmod 0600 "$ROOT/etc/dbd/slurmdbd.conf"
  SLURM_CONF="$ROOT/etc/dbd/slurm.conf" launch slurmdbd slurmdbd -D
  up slurmdbd "timeout 5 sacctmgr -i list cluster"
  timeout 20 sacctmgr -i add cluster sdci >/dev/null 2>&1 || true
fi

launch slurmctld slurmctld -D -i -f "$SLURM_CONF"   # -i: a fresh state folder is fine
launch slurmd slurmd -D -N localhost -f "$SLURM_CONF"
up slurmd "[ \"\$(sinfo -h -n localhost -o %T)\" = idle ]"
echo "slurm start: up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s (accounting=$ACCOUNTING); SLURM_CONF=$SLURM_CONF"
