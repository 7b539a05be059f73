#!/usr/bin/env bash
# Run a command in a private network and UTS namespace: only "lo" and a veth pair whose two ends both
# stay inside (link-local address, no route), hostname "localhost" (resolved by /etc/hosts, no DNS).
# Daemons that bind every interface (slurmdbd, torch's TCPStore) can then reach nothing else.
# SLURM 22.05's slurmd/slurmdbd die in a namespace with only "lo" ('Unable to resolve "(null)"'),
# hence the veth pair.  Root.   Usage: in_netns.sh CMD [ARGS...]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: in_netns.sh CMD [ARGS...]" >&2; exit 2; }
exec unshare --net --uts -- bash -c '
set -euo pipefail
ip link set lo up
hostname localhost
ip link add sd0 type veth peer name sd1
ip addr add 169.254.77.1/32 dev sd0
ip link set sd0 up; ip link set sd1 up
exec "$@"' in_netns "$@"
