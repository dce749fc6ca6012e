#!/usr/bin/env bash
# Container check: builds the image from deploy/Dockerfile with podman and
# runs Drover in containers on a private podman network:
#
#   - the image itself: uid 10001, volume, ports, HEALTHCHECK, contents, and
#     its default command starting a broker with no settings at all;
#   - keys made by the image's own `drover keygen`;
#   - a broker (droverd as PID 1, configured by DROVER_* variables, journal
#     on a named volume, keys mounted read-only) and two worker containers
#     (drover-worker --exec); a producer container maps a few hundred jobs
#     over them while one worker container is killed: every job must still
#     come back with the right result;
#   - the image's HEALTHCHECK (`drover health`) in the broker container;
#   - `podman stop` (SIGTERM) of a worker busy with jobs: it finishes them
#     and exits 0 within the grace period;
#   - `podman stop` of the broker and a new container on the same volume:
#     jobs accepted before are still there, and a worker using the example
#     plugin runs them;
#   - deploy/compose.yml: valid (docker-compose config -q), then run for real
#     by docker-compose through podman's Docker-compatible API socket:
#     `up --scale worker=2`, `run producer`, scale to 3, `down -v`.
#
# Each step is printed with its timing, then a summary line.
#
# Runs as root (CI is root; otherwise it re-runs itself with sudo). Installs
# what it needs with apt-get. Everything lives in a temporary directory
# (podman storage, configuration, networks, keys) and is removed on exit;
# the only thing kept between runs is the Debian base root file system,
# cached in $DROVER_CI_BASE_CACHE (default /var/tmp/drover-ci-base; set it
# empty to disable). Other knobs: DROVER_CI_JOBS (400), DROVER_CI_GRACE
# (stop grace period, 30 s), DROVER_CI_STORAGE_DRIVER (overlay or vfs),
# DROVER_CI_SAVE_IMAGE=FILE / DROVER_CI_IMAGE_TAR=FILE (keep the built image,
# or test a saved one instead of building).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
JOBS=${DROVER_CI_JOBS:-400}
GRACE=${DROVER_CI_GRACE:-30}
BASE_CACHE=${DROVER_CI_BASE_CACHE-/var/tmp/drover-ci-base}

if [ "$(id -u)" != 0 ]; then
    exec sudo -n --preserve-env=DROVER_CI_BASE_CACHE,DROVER_CI_JOBS,DROVER_CI_GRACE,DROVER_CI_IMAGE_TAR,DROVER_CI_SAVE_IMAGE,DROVER_CI_STORAGE_DRIVER \
        bash "$0" "$@"
fi

#  calc EXPR: arithmetic and comparisons on decimals (1 = true)
calc () { awk "BEGIN { print ($1) }"; }
START=$(date +%s.%N)
LAST=$START
#  step MESSAGE: a line with the time since the start and since the last step
step () {
    local now
    now=$(date +%s.%N)
    printf '[%6.1fs +%5.1fs] %s\n' "$(calc "$now - $START")" "$(calc "$now - $LAST")" "$*"
    LAST=$now
}
fail () {
    echo "FAIL: $*" >&2
    exit 1
}
now_s () { date +%s.%N; }
#  wait_log CONTAINER PATTERN SECONDS
wait_log () {
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        grep -q -- "$2" <<<"$(podman logs "$1" 2>&1)" && return 0
        sleep 0.2
    done
    podman logs "$1" 2>&1 | tail -20
    return 1
}
since () { printf '%.1f' "$(calc "$(now_s) - $1")"; }

# ---- packages --------------------------------------------------------------
need=""
#  Without recommends (docker-compose would bring the Docker engine), so the
#  network stack podman recommends is named here: netavark, aardvark-dns.
for pkg in podman buildah debootstrap slirp4netns uidmap iptables runc \
           netavark aardvark-dns fuse-overlayfs docker-compose; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' \
        || need="$need $pkg"
done
if [ -n "$need" ]; then
    step "installing:$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
step "podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1 {print $3}')"

# ---- private podman setup --------------------------------------------------
WORK=$(mktemp -d /var/tmp/drover-containers.XXXXXX)
TAG=$$
NET=drvci$TAG
BROKER=drvci-$TAG-broker
WORKER1=drvci-$TAG-worker1
WORKER2=drvci-$TAG-worker2
PLUGIN_WORKER=drvci-$TAG-plugin
PRODUCER=drvci-$TAG-producer
CLIENT=drvci-$TAG-client
BARE=drvci-$TAG-bare
VOLUME=drvci-$TAG-data
IMAGE=localhost/drover-ci:$TAG
BASE=docker.io/library/debian:bookworm-slim

cleanup () {
    local rc=$?
    set +e
    if [ -n "${COMPOSE_UP:-}" ]; then
        dc down -v -t 1 >/dev/null 2>&1
    fi
    if [ -n "${SERVICE_PID:-}" ]; then
        kill "$SERVICE_PID" 2>/dev/null
        wait "$SERVICE_PID" 2>/dev/null
    fi
    if [ -n "${CONTAINERS_CONF:-}" ]; then
        for c in "$CLIENT" "$PRODUCER" "$PLUGIN_WORKER" "$WORKER2" "$WORKER1" "$BROKER" "$BARE"; do
            podman rm -f -v -t 0 "$c" >/dev/null 2>&1
        done
        podman volume rm -f "$VOLUME" >/dev/null 2>&1
        podman network rm -f "$NET" >/dev/null 2>&1
        podman rmi -f "$IMAGE" "$BASE" >/dev/null 2>&1
        podman image prune -f >/dev/null 2>&1
    fi
    #  Whatever is still mounted under the work directory (overlay layers)
    findmnt -rn -o TARGET | grep "^$WORK/" | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    rm -rf "$WORK"
    if [ "$rc" = 0 ]; then
        step "cleaned up; PASS"
    else
        echo "containers check FAILED (exit $rc)" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

#  Overlay when the kernel lets us mount it on this file system, else vfs
#  (slower: every layer is a full copy); DROVER_CI_STORAGE_DRIVER chooses.
DRIVER=${DROVER_CI_STORAGE_DRIVER:-}
if [ -z "$DRIVER" ]; then
    DRIVER=vfs
    mkdir -p "$WORK/probe/l" "$WORK/probe/u" "$WORK/probe/w" "$WORK/probe/m"
    if mount -t overlay overlay -o "lowerdir=$WORK/probe/l,upperdir=$WORK/probe/u,workdir=$WORK/probe/w" \
            "$WORK/probe/m" 2>/dev/null; then
        umount "$WORK/probe/m"
        DRIVER=overlay
    fi
    rm -rf "$WORK/probe"
fi

mkdir -p "$WORK/storage" "$WORK/run" "$WORK/networks" "$WORK/tmp"
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "$DRIVER"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
EOF
#  runc and lowered ulimits: crun and the default rlimits fail on some hosts.
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
network_backend = "netavark"
network_config_dir = "$WORK/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/events.log"
tmp_dir = "$WORK/tmp"
EOF
export CONTAINERS_STORAGE_CONF=$WORK/storage.conf
export CONTAINERS_CONF=$WORK/containers.conf
export TMPDIR=$WORK/tmp
step "private podman storage ($DRIVER) and configuration in $WORK"

# ---- base image ------------------------------------------------------------
#  The machine's own Debian mirror, from its apt sources (deb822 or one-line).
mirror=""
security=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    [ -n "$mirror" ] || mirror=$(awk '/^URIs:/ && !/security/ {print $2; exit}' "$f")
    [ -n "$security" ] || security=$(awk '/^URIs:/ && /security/ {print $2; exit}' "$f")
done
lists=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(echo "$lists" \
    | awk '$1 == "deb" && !/security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}')
[ -n "$security" ] || security=$(echo "$lists" \
    | awk '$1 == "deb" && /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}')
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

#  A stand-in for the official debian:bookworm-slim: minbase, no package
#  cache, no documentation, manual pages or translations.
CACHED=bookworm-slim-rootfs.tar
base_tar=""
if [ -n "$BASE_CACHE" ] && [ -s "$BASE_CACHE/$CACHED" ]; then
    base_tar=$BASE_CACHE/$CACHED
    step "base root file system from the cache $base_tar"
else
    t=$(now_s)
    rootfs=$WORK/rootfs
    timeout 900 debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap from $mirror"; }
    {
        echo "deb $mirror bookworm main"
        echo "deb $mirror bookworm-updates main"
        [ -z "$security" ] || echo "deb $security bookworm-security main"
    } >"$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF2'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF2
    cat >"$rootfs/etc/apt/apt.conf.d/slim-clean" <<'EOF2'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Install-Recommends "false";
EOF2
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$rootfs/usr/share/man/"* "$rootfs/usr/share/info/"* "$rootfs/usr/share/locale/"* \
           "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/cache/apt/"*.bin \
           "$rootfs/var/lib/apt/lists/"* "$rootfs/var/log/"*.log
    base_tar=$WORK/$CACHED
    tar -C "$rootfs" -cf "$base_tar" .
    rm -rf "$rootfs"
    if [ -n "$BASE_CACHE" ] && mkdir -p "$BASE_CACHE" 2>/dev/null; then
        cp "$base_tar" "$BASE_CACHE/$CACHED.tmp$$" \
            && mv "$BASE_CACHE/$CACHED.tmp$$" "$BASE_CACHE/$CACHED"
    fi
    step "debootstrap bookworm (minbase) from $mirror in $(since "$t")s: $(( $(stat -c %s "$base_tar") / 1024 / 1024 )) MiB"
fi
podman import -q "$base_tar" "$BASE" >/dev/null
step "base image $BASE imported"

# ---- image ----------------------------------------------------------------
#  DROVER_CI_IMAGE_TAR=FILE tests an image saved earlier (podman save) instead
#  of building one; DROVER_CI_SAVE_IMAGE=FILE keeps the one built here.
t=$(now_s)
if [ -n "${DROVER_CI_IMAGE_TAR:-}" ]; then
    loaded=$(podman load -q -i "$DROVER_CI_IMAGE_TAR" | sed -n 's/^Loaded image: //p' | head -1)
    podman tag "$loaded" "$IMAGE"
    build_s=$(since "$t")
    how="loaded from $DROVER_CI_IMAGE_TAR"
else
    timeout 1800 podman build --pull=never --network=host --format docker -q -f "$ROOT/deploy/Dockerfile" \
        -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 \
        || { tail -40 "$WORK/build.log"; fail "podman build"; }
    build_s=$(since "$t")
    how="built from deploy/Dockerfile"
    if [ -n "${DROVER_CI_SAVE_IMAGE:-}" ]; then
        rm -f "$DROVER_CI_SAVE_IMAGE"
        podman save -q -o "$DROVER_CI_SAVE_IMAGE" "$IMAGE"
    fi
fi
size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
step "image $how in ${build_s}s: $((size / 1024 / 1024)) MiB"

#  What the image promises: user, volume, ports, health check, command.
meta=$(podman image inspect -f '{{.Config.User}}|{{json .Config.Volumes}}|{{json .Config.ExposedPorts}}|{{json .Config.Cmd}}|{{json .Config.Healthcheck.Test}}' "$IMAGE")
echo "    $meta"
case "$meta" in
    10001:10001\|*/var/lib/drover*5555/tcp*5556/tcp*5557/tcp*9090/tcp*droverd*--data-dir*/var/lib/drover*drover*health*) ;;
    *) fail "image metadata: $meta" ;;
esac
uid=$(podman run --rm --no-healthcheck "$IMAGE" id -u)
[ "$uid" = 10001 ] || fail "image runs as uid $uid, not 10001"
plugin=/usr/local/lib/drover/drover_example_plugin.so
podman run --rm --no-healthcheck "$IMAGE" sh -c \
    "command -v droverd drover-worker drover >/dev/null && test -f $plugin \
     && test -e /usr/local/lib/libdrover.so && ! command -v cc && ! test -d /usr/include/zmq.h" \
    >/dev/null || fail "image contents (programs, plugin, libdrover, no compiler)"
step "image checks: uid 10001, programs, libdrover, plugin at $plugin, no build tools"

#  The image alone, no settings: droverd makes its own server certificate
#  and journal in the (anonymous) volume, as uid 10001.
podman run -d --name "$BARE" --health-interval disable "$IMAGE" >/dev/null 2>>"$WORK/podman.err"
wait_log "$BARE" "serving clients" 20 || fail "the image's default command did not start a broker"
files=$(podman exec "$BARE" sh -c 'cd /var/lib/drover && stat -c "%n %u %a" server.cert server.cert_secret && ls -d allow journal')
grep -q "server.cert_secret 10001 600" <<<"$files" || fail "bare broker's data directory: $files"
podman rm -f -v -t 5 "$BARE" >/dev/null 2>>"$WORK/podman.err"
step "the image's default command: droverd made its certificate, allow/ and journal/ in /var/lib/drover"

# ---- keys ------------------------------------------------------------------
#  Made by the image's own drover keygen as uid 10001, so the containers can
#  read their secret halves; mounted read-only below.
install -d -o 10001 -g 10001 -m 0700 "$WORK/keys"
install -d -o 10001 -g 10001 -m 0755 "$WORK/keys/allow"
podman run --rm --no-healthcheck -v "$WORK/keys:/keys" "$IMAGE" sh -c '
    set -e
    drover keygen /keys/server >/dev/null
    drover keygen /keys/producer --role producer >/dev/null
    drover keygen /keys/worker --role worker >/dev/null
    cp /keys/producer /keys/worker /keys/allow/' \
    || fail "drover keygen in a container"
for f in server server_secret producer_secret worker_secret allow/producer allow/worker; do
    [ -s "$WORK/keys/$f" ] || fail "keygen did not write $f"
done
[ "$(stat -c %a "$WORK/keys/server_secret")" = 600 ] || fail "server_secret is not mode 0600"
step "keys made with drover keygen in the image (server, producer, worker)"

# ---- broker ----------------------------------------------------------------
#  A subnet no route on this host uses yet.
subnet=""
for i in $(shuf -i 100-250 -n 40); do
    if ! ip -4 route | grep -q "^10\.89\.$i\."; then
        subnet=10.89.$i.0/24
        break
    fi
done
[ -n "$subnet" ] || fail "no free 10.89.x.0/24 subnet"
#  Internal: the containers talk to each other only. Its bridge gets our own
#  name (this podman has no --interface-name), so it cannot be another
#  network's podmanN.
podman network create --internal --subnet "$subnet" "$NET" >/dev/null
sed -i "s/\"network_interface\": *\"[^\"]*\"/\"network_interface\": \"$NET\"/" \
    "$WORK/networks/$NET.json"
grep -q "\"network_interface\": *\"$NET\"" "$WORK/networks/$NET.json" \
    || fail "could not name the bridge of $NET"
podman volume create "$VOLUME" >/dev/null
step "network $NET ($subnet) and volume $VOLUME"

#  The image's own command (droverd --data-dir /var/lib/drover), configured
#  through the environment. No health timer: podman would want systemd for
#  it; `podman healthcheck run` below runs the same check. A fixed MAC: a
#  restarted broker often gets its old address back, and peers still holding
#  the old MAC in their ARP cache would not reach it for a while.
start_broker () {
    podman run -d --name "$BROKER" --network "$NET" --network-alias broker \
        --mac-address 02:d0:00:00:00:01 \
        -v "$VOLUME:/var/lib/drover" \
        -v "$WORK/keys/server_secret:/etc/drover/server_secret:ro" \
        -v "$WORK/keys/allow:/etc/drover/allow:ro" \
        -e DROVER_SERVER_CERT=/etc/drover/server_secret \
        -e DROVER_ALLOW=/etc/drover/allow \
        --health-interval disable \
        "$IMAGE" >/dev/null 2>>"$WORK/podman.err"
}
t=$(now_s)
start_broker
wait_log "$BROKER" "serving clients" 20 || fail "broker did not start"
#  The bridge (made with the first container) would take the lowest MAC of
#  its ports, changing as containers come and go; the containers' gateway,
#  which answers their DNS queries, would then sit behind a MAC they no
#  longer know. A fixed one keeps it still.
ip link set dev "$NET" address 02:d0:00:00:00:fe || fail "cannot set the MAC of bridge $NET"
step "broker up in $(since "$t")s: $(grep -m1 'serving clients' <<<"$(podman logs "$BROKER" 2>&1)" | sed 's/.*serving/serving/')"

#  Workers and producers: the broker by name, the broker's public key and
#  their own secret key mounted read-only, configured through the environment.
WORKER_OPTS=(--network "$NET" --no-healthcheck
    -v "$WORK/keys/server:/etc/drover/keys/server:ro"
    -v "$WORK/keys/worker_secret:/etc/drover/keys/worker_secret:ro"
    -e DROVER_BROKER=tcp://broker:5556 -e DROVER_SERVER_KEY=/etc/drover/keys/server
    -e DROVER_CERT=/etc/drover/keys/worker_secret)
PRODUCER_OPTS=(--network "$NET" --no-healthcheck
    -v "$WORK/keys/server:/etc/drover/keys/server:ro"
    -v "$WORK/keys/producer_secret:/etc/drover/keys/producer_secret:ro"
    -e DROVER_BROKER=tcp://broker:5555 -e DROVER_SERVER_KEY=/etc/drover/keys/server
    -e DROVER_CERT=/etc/drover/keys/producer_secret)
#  A producer container that stays up for short commands (podman exec).
podman run -d --name "$CLIENT" "${PRODUCER_OPTS[@]}" "$IMAGE" sleep infinity >/dev/null
client () {
    podman exec "$CLIENT" drover "$@" </dev/null
}
client_stdin () {
    podman exec -i "$CLIENT" drover "$@"
}

#  Upper-cases its payload after 50 ms; "sleep:S" sleeps S seconds instead.
HANDLER='read -r p; case "$p" in sleep:*) sleep "${p#sleep:}"; echo "slept ${p#sleep:}";; *) sleep 0.05; printf "%s\n" "$p" | tr a-z A-Z;; esac'
start_worker () {
    podman run -d --name "$1" "${WORKER_OPTS[@]}" \
        "$IMAGE" drover-worker --name "$2" --queue work --processes 2 \
        --exec "$HANDLER" >/dev/null
}
t=$(now_s)
start_worker "$WORKER1" worker1
start_worker "$WORKER2" worker2
wait_log "$BROKER" "worker worker1.* joined" 20 || fail "worker1 did not join"
wait_log "$BROKER" "worker worker2.* joined" 20 || fail "worker2 did not join"
step "2 worker containers joined in $(since "$t")s (2 processes each, --exec handler)"
for c in "$BROKER:droverd" "$WORKER1:drover-worker"; do
    comm=$(podman exec "${c%%:*}" cat /proc/1/comm)
    [ "$comm" = "${c#*:}" ] || fail "PID 1 in ${c%%:*} is $comm, not ${c#*:}"
done

# ---- health check ----------------------------------------------------------
#  `drover health` GETs the broker's /readyz; the image's HEALTHCHECK runs it.
#  Checked once the broker in this tree has its HTTP endpoint (broker.c
#  starts the HTTP server); from then on it must pass.
if grep -q 'http_new *(' "$ROOT/broker/broker.c"; then
    t=$(now_s)
    health=""
    while :; do
        if podman healthcheck run "$BROKER" >/dev/null 2>&1; then
            health=ok
            break
        fi
        [ "$(calc "$(now_s) - $t > 15")" = 1 ] && break
        sleep 0.5
    done
    if [ "$health" != ok ]; then
        podman exec "$BROKER" drover health || true
        fail "HEALTHCHECK (drover health) did not pass in the broker container"
    fi
    podman exec "$BROKER" drover health >/dev/null \
        || fail "podman exec broker drover health"
    [ "$(podman inspect -f '{{.State.Health.Status}}' "$BROKER")" = healthy ] \
        || fail "broker container not marked healthy"
    step "HEALTHCHECK passes in the broker after $(since "$t")s (podman healthcheck run, drover health)"
    health_note="health check passed"
else
    step "HEALTHCHECK not checked: the broker in this tree has no HTTP endpoint yet"
    health_note="health check not run"
fi

# ---- jobs, with a worker killed mid-run -------------------------------------
mkdir -p "$WORK/io"
seq -f 'job-%04g' 1 "$JOBS" >"$WORK/io/in.txt"
tr a-z A-Z <"$WORK/io/in.txt" >"$WORK/io/expected.txt"
chmod 0755 "$WORK/io"
: >"$WORK/out.txt"
t=$(now_s)
podman run --name "$PRODUCER" "${PRODUCER_OPTS[@]}" -v "$WORK/io:/io:ro" \
    "$IMAGE" sh -c 'drover map -q work --timeout 120 </io/in.txt' \
    >"$WORK/out.txt" 2>"$WORK/producer.err" &
producer_pid=$!
#  Results stream out in input order: kill worker1 once a fifth is back.
killed_at=""
while kill -0 "$producer_pid" 2>/dev/null; do
    n=$(wc -l <"$WORK/out.txt")
    if [ "$n" -ge $((JOBS / 5)) ]; then
        podman kill "$WORKER1" >/dev/null
        killed_at=$n
        break
    fi
    sleep 0.1
done
[ -n "$killed_at" ] || fail "the producer ended before worker1 could be killed"
step "killed worker1 (SIGKILL) with $killed_at of $JOBS results back"
map_rc=0
wait "$producer_pid" || map_rc=$?
map_s=$(since "$t")
[ "$map_rc" = 0 ] || { cat "$WORK/producer.err"; fail "drover map exited $map_rc"; }
diff -q "$WORK/io/expected.txt" "$WORK/out.txt" >/dev/null \
    || { diff "$WORK/io/expected.txt" "$WORK/out.txt" | head; fail "wrong or missing results"; }
#  One line per worker process of the killed container
requeued=$(grep 'worker worker1.* left' <<<"$(podman logs "$BROKER" 2>&1)" \
    | sed -n 's/.*requeueing \([0-9]*\) jobs.*/\1/p' | awk '{n += $1} END {if (NR) print n}')
[ -n "$requeued" ] || fail "the broker did not see worker1 leave"
[ "$requeued" -gt 0 ] || fail "worker1 held no jobs when it was killed"
step "$JOBS jobs via drover map in ${map_s}s: all $JOBS results right, in order; $requeued jobs of the killed worker requeued"

# ---- graceful stop of a busy worker -----------------------------------------
#  5 s each: time for the status polls below to see all four running
ids=$(printf 'sleep:5\nsleep:5\nsleep:5\nsleep:5\n' \
    | client_stdin submit -q work --each-line --no-wait) || fail "submit of sleep jobs"
[ "$(echo "$ids" | wc -l)" = 4 ] || fail "expected 4 job ids, got: $ids"
#  Stop it only once the broker has handed it all four.
deadline=$((SECONDS + 20))
while :; do
    states=$(client status $ids) || fail "drover status"
    [ "$(grep -c ' running ' <<<"$states")" = 4 ] && break
    [ $SECONDS -lt $deadline ] || fail "the sleep jobs did not all reach worker2: $states"
    sleep 0.2
done
t=$(now_s)
podman stop -t "$GRACE" "$WORKER2" >/dev/null
stop_s=$(since "$t")
drain_s=$stop_s
code=$(podman inspect -f '{{.State.ExitCode}}' "$WORKER2")
[ "$code" = 0 ] || { podman logs "$WORKER2" 2>&1 | tail; fail "worker2 exited $code on SIGTERM"; }
[ "$(calc "$stop_s < $GRACE")" = 1 ] || fail "worker2 took ${stop_s}s to stop (grace ${GRACE}s)"
#  Each worker process says how many jobs it still had to finish.
held=$(grep 'draining: finishing' <<<"$(podman logs "$WORKER2" 2>&1)" \
    | sed -n 's/.*finishing \([0-9]*\) held.*/\1/p' | awk '{n += $1} END {print n + 0}')
[ "$held" -gt 0 ] || { podman logs "$WORKER2" 2>&1 | tail -20; fail "worker2 did not drain held jobs"; }
#  No other worker serves the queue now: these results come from the drain.
results=$(client result --wait --timeout 10 $ids) || fail "results of the drained jobs"
[ "$(echo "$results" | grep -c 'slept 5')" = 4 ] || fail "drained jobs: $results"
step "podman stop (SIGTERM) of a busy worker: finished the $held jobs it held, exit 0 in ${stop_s}s (grace ${GRACE}s)"

# ---- broker restart on its volume -------------------------------------------
ids=$(seq -f 'kept-%g' 1 20 | client_stdin submit -q held --each-line --no-wait) \
    || fail "submit to held"
t=$(now_s)
podman stop -t "$GRACE" "$BROKER" >/dev/null 2>>"$WORK/podman.err"
stop_s=$(since "$t")
code=$(podman inspect -f '{{.State.ExitCode}}' "$BROKER")
[ "$code" = 0 ] || { podman logs "$BROKER" 2>&1 | tail; fail "droverd exited $code on SIGTERM"; }
[ "$(calc "$stop_s < 10")" = 1 ] || fail "droverd took ${stop_s}s to stop"
podman rm "$BROKER" >/dev/null 2>>"$WORK/podman.err"
start_broker
wait_log "$BROKER" "serving clients" 20 || fail "broker did not restart"
step "broker stopped by SIGTERM in ${stop_s}s (exit 0), started again as a new container on $VOLUME"

podman run -d --name "$PLUGIN_WORKER" "${WORKER_OPTS[@]}" "$IMAGE" \
    drover-worker --name plugin --queue held --processes 1 \
    --plugin "$plugin:upper" >/dev/null
results=$(client result --wait --timeout 20 $ids) || fail "results of the held jobs"
[ "$results" = "$(seq -f 'KEPT-%g' 1 20)" ] || fail "held jobs after the restart: $results"
step "20 jobs accepted before the restart ran on a plugin worker ($plugin:upper) after it"

# ---- compose ---------------------------------------------------------------
#  docker-compose drives podman through its Docker-compatible API socket.
(cd "$ROOT/deploy" && docker-compose -f compose.yml config -q) \
    || fail "docker-compose config -q deploy/compose.yml"
podman system service --time=0 "unix://$WORK/podman.sock" >"$WORK/service.log" 2>&1 &
SERVICE_PID=$!
export DOCKER_HOST=unix://$WORK/podman.sock COMPOSE_PROJECT_NAME=drvci$TAG
#  The image just built, the keys made above, free host ports on loopback.
export DROVER_IMAGE=$IMAGE DROVER_KEYS=$WORK/keys DROVER_PUBLISH=127.0.0.1
export DROVER_PORT_PRODUCERS= DROVER_PORT_WORKERS= DROVER_PORT_STATE= DROVER_PORT_HTTP=
dc () {
    (cd "$ROOT/deploy" && timeout 180 docker-compose -f compose.yml "$@")
}
for _ in $(seq 50); do
    [ -S "$WORK/podman.sock" ] && break
    sleep 0.1
done
t=$(now_s)
dc up -d --no-build --scale worker=2 >"$WORK/compose.log" 2>&1 \
    || { cat "$WORK/compose.log"; fail "docker-compose up"; }
COMPOSE_UP=1
deadline=$((SECONDS + 30))
while [ "$(dc logs --no-color broker 2>/dev/null | grep -c 'broker: worker .* joined')" -lt 4 ]; do
    [ $SECONDS -lt $deadline ] || { dc logs --no-color | tail -30; fail "compose workers did not join"; }
    sleep 0.3
done
step "docker-compose up --scale worker=2 on podman: broker and 2 workers (4 processes) in $(since "$t")s"
t=$(now_s)
dc run --rm -T producer >"$WORK/compose-out.txt" 2>"$WORK/compose-err.txt" \
    || { cat "$WORK/compose-err.txt"; fail "docker-compose run producer"; }
[ "$(cat "$WORK/compose-out.txt")" = "$(seq -f 'HELLO FROM JOB %g' 1 100)" ] \
    || { head "$WORK/compose-out.txt"; fail "compose producer results"; }
step "docker-compose run producer: 100 jobs through the plugin workers, all right, in $(since "$t")s"
dc up -d --no-build --scale worker=3 >>"$WORK/compose.log" 2>&1 \
    || { tail "$WORK/compose.log"; fail "docker-compose scale to 3"; }
[ "$(dc ps -q worker | wc -l)" = 3 ] || fail "compose did not scale to 3 workers"
t=$(now_s)
dc down -v >>"$WORK/compose.log" 2>&1 || { tail "$WORK/compose.log"; fail "docker-compose down"; }
COMPOSE_UP=""
step "scaled to 3 workers; docker-compose down -v in $(since "$t")s"

echo "summary: image $how in ${build_s}s ($((size / 1024 / 1024)) MiB);" \
     "$JOBS jobs in ${map_s}s with a worker container killed mid-run ($requeued requeued, 0 lost);" \
     "$health_note; SIGTERM: busy worker drained $held jobs and exited in ${drain_s}s," \
     "broker exited in ${stop_s}s and kept 20 jobs across its restart;" \
     "compose: 100 jobs over scaled workers; total $(since "$START")s"
