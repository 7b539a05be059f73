#!/usr/bin/env bash
# Stop the daemons start.sh started, by the PIDs it recorded (never by name): SIGTERM, then SIGKILL after 15 s.
ROOT=${ROOT:?set ROOT to the folder given to start.sh}
for d in slurmd slurmctld slurmdbd mariadbd munged; do
  f="$ROOT/run/$d.launch.pid"
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "slurm stop: $d ($pid) ignored SIGTERM; SIGKILL" >&2; kill -KILL "$pid"; fi
  fi
  rm -f "$f"
done
echo "slurm stop: done"
