#!/usr/bin/env bash
# The container path against a real Docker engine (run by scripts/test.sh, so CI runs it):
#   1. a private Docker daemon on its own socket (stopped at exit), installed with apt if missing;
#   2. a Debian bookworm base image bootstrapped without a registry (debootstrap; rootfs tarball cached);
#   3. the image built from this checkout through the SDK (`sd-darts container build`, BASE_IMAGE = that base);
#   then, through `sd-darts container run` (the SDK):
#   4. `sd-darts --help` in the image;
#   5. a tiny search (digits, tiny network, CPU) in the image, as a non-root uid, equal byte for
#      byte (genotype, summary, per-epoch metrics) to the same search on the host; its outputs
#      belong to that uid;
#   6. a GPU request gives the one-line error on this engine (no GPU runtime);
#   7. `sd-darts bench --docker --quick --only train_step`: a benchmark in the image, reported with its id;
#   8. `dvc repro` of one search stage (and the data stage) with `pipeline.runner: docker` in a clone
#      (skipped, with a message, while check-params does not accept that key): its outputs owned by
#      the invoking user, its provenance naming the image id.
# Cached between runs on one machine (warm run: seconds instead of minutes): the base rootfs
# tarball and the daemon's data root (images, layers) in $SD_DARTS_DOCKER_CACHE.
# Environment:
#   SD_DARTS_SKIP_DOCKER=1       skip this check (quick local runs)
#   SD_DARTS_DOCKER_CACHE=DIR    cache folder (default /var/tmp/sd-darts-docker; remove it for a cold run)
#   SD_DARTS_DOCKER_BASE=IMAGE   use this base image (e.g. python:3.11.11-slim-bookworm, pulled) instead of debootstrap
#   SD_DARTS_DEBIAN_MIRROR=URL   Debian mirror for debootstrap (default: the host's apt mirror on Debian, else deb.debian.org)
set -euo pipefail
if [ "${SD_DARTS_SKIP_DOCKER:-0}" = 1 ]; then
    echo "docker check skipped (SD_DARTS_SKIP_DOCKER=1)"
    exit 0
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
if [ -x "$REPO/.venv/bin/python" ]; then
    export PATH="$REPO/.venv/bin:$PATH"
fi
export PYTHONDONTWRITEBYTECODE=1
CACHE=${SD_DARTS_DOCKER_CACHE:-/var/tmp/sd-darts-docker}
BASE=${SD_DARTS_DOCKER_BASE:-sd-darts-base:bookworm}
IMAGE=sd-darts:latest # the default name of sd_darts.tools.container, in this private engine
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
say() { printf '\n== docker check: %s\n' "$*" >&2; }
T_START=$(date +%s)
TIMES=()
durations() { [ ${#TIMES[@]} = 0 ] || printf '  %s\n' "${TIMES[@]}"; }
fail() {
    echo "docker check FAILED: $*" >&2
    echo "durations until then:" >&2
    durations >&2
    exit 1
}
mark() { # mark NAME START: record the seconds since START under NAME
    TIMES+=("$(printf '%-52s %5d s' "$1" $(($(date +%s) - $2)))")
}

say "1/8 tools and a private Docker daemon"
t=$(date +%s)
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
if [ -z "${SD_DARTS_DOCKER_BASE:-}" ]; then
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
fi
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
python -c "import docker" 2>/dev/null || python -m pip install -q -c constraints.txt docker
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock -w 3600 9 || fail "another docker check holds $CACHE/lock"
SOCK="$CACHE/docker.sock"
PIDFILE="$CACHE/dockerd.pid"
# a daemon left behind by an interrupted earlier run of this script (same cache) is stopped first
if [ -f "$PIDFILE" ] && old=$(cat "$PIDFILE") && grep -qa -- "$CACHE" "/proc/$old/cmdline" 2>/dev/null; then
    $SUDO kill "$old" && while [ -e "/proc/$old" ]; do sleep 1; done
fi
$SUDO rm -f "$PIDFILE" "$SOCK"
$SUDO dockerd --storage-driver=overlay2 --iptables=false --ip-masq=false --bridge=none \
    --data-root "$CACHE/data" --exec-root "$CACHE/exec" --pidfile "$PIDFILE" \
    --containerd-namespace sd-darts-check --containerd-plugins-namespace sd-darts-check-plugins \
    --group "$(id -g)" -H "unix://$SOCK" >"$CACHE/dockerd.log" 2>&1 &
DOCKERD=$!
WORK=""
cleanup() {
    [ -z "$WORK" ] || $SUDO rm -rf "$WORK"
    $SUDO kill "$DOCKERD" 2>/dev/null || true
    wait "$DOCKERD" 2>/dev/null || true
    # what dockerd leaves mounted in its exec root (the default network namespace)
    awk -v root="$CACHE/exec/" 'index($2, root) == 1 {print $2}' /proc/mounts | while read -r m; do $SUDO umount "$m" || true; done
}
trap cleanup EXIT
export DOCKER_HOST="unix://$SOCK"
for _ in $(seq 1 60); do
    python -c "import docker; docker.from_env().ping()" 2>/dev/null && break
    kill -0 "$DOCKERD" 2>/dev/null || { tail -5 "$CACHE/dockerd.log" >&2; fail "dockerd exited; see $CACHE/dockerd.log"; }
    sleep 1
done
python -c "import docker; docker.from_env().ping()" || fail "dockerd did not answer on $SOCK; see $CACHE/dockerd.log"
mark "tools and daemon" "$t"

say "2/8 the base image ($BASE)"
t=$(date +%s)
base_state=reused
if [ -n "${SD_DARTS_DOCKER_BASE:-}" ]; then
    docker image inspect "$BASE" >/dev/null 2>&1 || { docker pull -q "$BASE" && base_state=pulled; }
elif ! docker image inspect "$BASE" >/dev/null 2>&1; then
    TAR="$CACHE/base-bookworm.tar"
    if [ ! -s "$TAR" ]; then
        base_state="bootstrapped (debootstrap)"
        mirror=${SD_DARTS_DEBIAN_MIRROR:-}
        if [ -z "$mirror" ] && grep -qs '^ID=debian' /etc/os-release; then
            mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
            [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 ~ / bookworm / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
        fi
        mirror=${mirror:-http://deb.debian.org/debian}
        ROOTFS="$CACHE/rootfs.tmp"
        $SUDO rm -rf "$ROOTFS"
        $SUDO debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,git,ca-certificates \
            bookworm "$ROOTFS" "$mirror" >"$CACHE/debootstrap.log" 2>&1 || { tail -5 "$CACHE/debootstrap.log" >&2; fail "debootstrap failed"; }
        # pip in the build must trust what the host trusts (e.g. a proxy's certificate authority)
        if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
            $SUDO cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
        fi
        $SUDO chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1
        $SUDO sh -c "rm -f '$ROOTFS'/usr/lib/python3*/EXTERNALLY-MANAGED && rm -rf '$ROOTFS'/var/lib/apt/lists/* '$ROOTFS'/var/cache/apt/*.bin '$ROOTFS'/var/cache/apt/archives/*.deb"
        $SUDO tar -C "$ROOTFS" -cf "$TAR.tmp" . && $SUDO mv "$TAR.tmp" "$TAR"
        $SUDO rm -rf "$ROOTFS"
    else
        base_state="imported (cached $TAR)"
    fi
    docker import "$TAR" "$BASE" >/dev/null
fi
mark "base image: $base_state" "$t"

say "3/8 the image, built through the SDK (sd-darts container build; log: $CACHE/build.log)"
t=$(date +%s)
python -m sd_darts container build --tag "$IMAGE" --base-image "$BASE" --network host >"$CACHE/build.log" 2>&1 ||
    { tail -20 "$CACHE/build.log" >&2; fail "the image did not build"; }
tail -1 "$CACHE/build.log"
cached=$(grep -c "Using cache" "$CACHE/build.log" || true)
docker image prune -f >/dev/null
mark "image build ($cached cached steps)" "$t"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sd-darts-docker.XXXXXX")
chmod 755 "$WORK"
run_in_image() { python -m sd_darts container run --network none "$@"; }

say "4/8 sd-darts --help in the image"
t=$(date +%s)
run_in_image -- sd-darts --help >"$WORK/help.txt" || fail "sd-darts --help failed in the image"
grep -q "^usage: sd-darts" "$WORK/help.txt" || fail "sd-darts --help in the image printed no usage"
mark "sd-darts --help" "$t"

say "5/8 a tiny search in the image (as a non-root uid) equals the same search on the host"
t=$(date +%s)
# the same code on both sides: this checkout's files (committed and not), outside it
mkdir "$WORK/repo"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -f "$f" ] && printf '%s\0' "$f"
done | tar --null -T - -cf - | tar -xf - -C "$WORK/repo"
if [ "$(id -u)" = 0 ]; then RUN_AS=1000:1000; else RUN_AS="$(id -u):$(id -g)"; fi
SEARCH=(search --dataset digits --image-size 16 --init-channels 4 --layers 5 --epochs 2 --warmup-epochs 1
    --batch-size 8 --limit-samples 64 --device cpu --seed 0)
(cd "$WORK/repo" && OMP_NUM_THREADS=1 python -m sd_darts "${SEARCH[@]}" --out "$WORK/host-search" >/dev/null 2>"$WORK/host-search.log") ||
    { tail -5 "$WORK/host-search.log" >&2; fail "the tiny search failed on the host"; }
$SUDO chown -R "$RUN_AS" "$WORK/repo" # the copy (and what the host run left in it, e.g. .dvc/tmp) belongs to RUN_AS
(cd "$WORK/repo" && OMP_NUM_THREADS=1 run_in_image --user "$RUN_AS" -- python -m sd_darts "${SEARCH[@]}" --out runs/search >/dev/null 2>"$WORK/image-search.log") ||
    { tail -5 "$WORK/image-search.log" >&2; fail "the tiny search failed in the image"; }
IMG="$WORK/repo/runs/search"
n=0
while IFS= read -r f; do
    cmp "$WORK/host-search/$f" "$IMG/$f" || fail "$f differs between the host and the image"
    n=$((n + 1))
done < <(cd "$WORK/host-search" && find genotype.json summary.json genotypes dvclive/plots -type f ! -name epoch_seconds.tsv | sort)
# final metrics: byte for byte but for the epoch's wall time
cmp <(grep -v epoch_seconds "$WORK/host-search/dvclive/metrics.json") <(grep -v epoch_seconds "$IMG/dvclive/metrics.json") ||
    fail "dvclive/metrics.json differs between the host and the image"
echo "identical: $((n + 1)) files (genotype.json, summary.json, per-epoch genotypes and metrics, final metrics)"
others=$(find "$WORK/repo" \( ! -uid "${RUN_AS%%:*}" -o ! -gid "${RUN_AS##*:}" \) -print | head -3)
[ -z "$others" ] || fail "files written in the image are not owned by $RUN_AS: $others"
echo "owner of $IMG/genotype.json: $(stat -c %u:%g "$IMG/genotype.json") (expected $RUN_AS)"
mark "tiny search: host and image, compared" "$t"

say "6/8 a GPU request on an engine without a GPU runtime: one line, exit 2"
t=$(date +%s)
set +e
run_in_image --gpus all -- true >"$WORK/gpu.out" 2>"$WORK/gpu.err"
rc=$?
set -e
cat "$WORK/gpu.err"
[ "$rc" = 2 ] || fail "--gpus all exited with $rc, not 2"
[ "$(wc -l <"$WORK/gpu.err")" = 1 ] && grep -q "no GPU runtime" "$WORK/gpu.err" || fail "--gpus all did not give the one-line error"
[ "$(docker ps -aq | wc -l)" = 0 ] || fail "a container was left behind: $(docker ps -a)"
mark "GPU request error" "$t"

say "7/8 a benchmark in the image (sd-darts bench --docker --quick --only train_step)"
t=$(date +%s)
(cd "$WORK/repo" && OMP_NUM_THREADS=1 python -m sd_darts bench --docker --quick --device cpu --only train_step \
    --checkout "$WORK/repo" --out "$WORK/bench/benchmarks.md" 2>"$WORK/bench.log") ||
    { tail -5 "$WORK/bench.log" >&2; fail "sd-darts bench --docker failed"; }
image_id=$(docker image inspect -f '{{.Id}}' "$IMAGE")
grep -q "$image_id" "$WORK/bench/benchmarks.md" || fail "the benchmark report does not name the image $image_id"
grep -c '^| [a-z_]*_step ' "$WORK/bench/benchmarks.md" | xargs echo "benchmark rows measured in the image:"
mark "train-step benchmark in the image (quick)" "$t"

say "8/8 DVC stages with pipeline.runner: docker (dvc repro of one search stage in a clone)"
t=$(date +%s)
git clone -q --no-hardlinks "$REPO" "$WORK/dvc"
git ls-files -z --modified --others --exclude-standard | while IFS= read -r -d '' f; do
    if [ -f "$f" ]; then mkdir -p "$WORK/dvc/$(dirname "$f")" && cp -p "$f" "$WORK/dvc/$f"; fi
done
cd "$WORK/dvc"
python - <<'EOF'
import yaml

params = yaml.safe_load(open("params-smoke.yaml"))
params.setdefault("pipeline", {})["runner"] = "docker"
params["pipeline"]["gpus"] = None  # this engine has no GPU runtime; the stage runs on the CPU
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
EOF
if python -m sd_darts check-params params.yaml >/dev/null 2>"$WORK/runner.err"; then
    # one search stage (and the data stage it depends on), each inside the image
    stage=data
    for s in $(dvc stage list --name-only); do
        case "$s" in search@*) stage=$s && break ;; esac
    done
    OMP_NUM_THREADS=1 dvc repro "$stage" >"$WORK/dvc.log" 2>&1 || { tail -15 "$WORK/dvc.log" >&2; fail "dvc repro $stage with runner: docker failed"; }
    image_id=$(docker image inspect -f '{{.Id}}' "$IMAGE")
    made=$(find data runs metrics -type f -newer params.yaml 2>/dev/null | wc -l)
    [ "$made" -gt 0 ] || fail "dvc repro $stage with runner: docker wrote no output (did the stage run in the image?)"
    others=$(find data runs metrics -newer params.yaml -not -uid "$(id -u)" -print 2>/dev/null | head -3)
    [ -z "$others" ] || fail "the stage's outputs are not owned by $(id -u): $others"
    if [ "$stage" != data ]; then
        grep -rlq "$image_id" metrics/ || fail "no provenance under metrics/ records the image id $image_id"
    fi
    echo "dvc repro $stage with runner: docker: $made files, owned by $(id -u):$(id -g); provenance records $image_id"
    mark "DVC stages with runner: docker ($stage)" "$t"
else
    echo "SKIPPED: check-params does not accept pipeline.runner yet ($(cat "$WORK/runner.err")); this step passes once the runner switch exists"
    mark "DVC stage with runner: docker (SKIPPED)" "$t"
fi
cd "$REPO"

echo
mark "total" "$T_START"
echo "docker check passed; durations:"
durations
