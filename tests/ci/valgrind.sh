#!/usr/bin/env bash
# Memory check of droverd under Valgrind: a real broker with CURVE and a
# journal runs a few hundred jobs through a drover-worker, failures into the
# dead letters, shared state, locks, events, a cancel, then stops on
# SIGTERM; it is started again on the same data directory (journal replay),
# does a little more, and stops again. Any definite leak or memory error in
# either run fails the check. Suppressions (tests/hostile/valgrind.supp)
# cover only libraries' own one-time allocations, each explained there.
#
# Usage: tests/ci/valgrind.sh [BUILD_DIR]   (default: build-valgrind, built here)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${1:-build-valgrind}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac

if ! command -v valgrind >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd=sudo
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind </dev/null
fi
# A plain build (no sanitizers: Valgrind and ASan do not mix)
if [ ! -x "$BUILD/broker/droverd" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j "$(nproc)" --target droverd drover_cli drover-worker >/dev/null
fi
DROVERD=$BUILD/broker/droverd
DROVER=$BUILD/cli/drover
DROVER_WORKER=$BUILD/workers/drover-worker
SUPP=$ROOT/tests/hostile/valgrind.supp

T=$(mktemp -d "${TMPDIR:-/tmp}/drover-valgrind.XXXXXX")
PIDS=()
BROKER_PID=""
cleanup () {
    local rc=$?
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ $rc -ne 0 ]; then
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            echo "--- $f" >&2
            tail -n 60 "$f" >&2
        done
    fi
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail () {
    echo "FAIL (valgrind): $*" >&2
    exit 1
}

mkdir -p "$T/keys" "$T/allow"
for role in producer worker admin; do
    "$DROVER" keygen "$T/keys/$role" --role "$role" >/dev/null
    cp "$T/keys/$role" "$T/allow/$role.cert"
done
"$DROVER" keygen "$T/keys/server" >/dev/null

# The HTTP endpoint (when this droverd has one) on loopback, port from the OS
METRICS_ARGS=()
help=$("$DROVERD" --help 2>&1 || true)
if grep -q -- '--metrics ' <<<"$help"; then
    METRICS_ARGS=(--metrics tcp://127.0.0.1:0)
fi

# http_get PATH: the status line of GET PATH on the broker's metrics port
http_get () {
    local port
    port=$(grep -i "metrics" "$T/broker-$RUN.log" | grep -oE '127\.0\.0\.1:[0-9]+' | tail -n 1 | cut -d: -f2)
    [ -n "$port" ] || return 1
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$1" >&3
    timeout 60 head -n 1 <&3
    exec 3<&- 3>&-
}

# start_broker RUN: droverd under Valgrind; sets BROKER_PID, PRODUCERS, WORKERS
start_broker () {
    local run=$1 log="$T/broker-$1.log"
    RUN=$run
    valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
        --show-leak-kinds=definite --num-callers=30 --suppressions="$SUPP" \
        --log-file="$T/valgrind-$run.log" \
        "$DROVERD" --producers tcp://127.0.0.1:0 --workers tcp://127.0.0.1:0 \
        --state tcp://127.0.0.1:0 --cert "$T/keys/server_secret" --allow "$T/allow" \
        --data-dir "$T/data" --heartbeat 1000 "${METRICS_ARGS[@]}" >"$log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    for _ in $(seq 1200); do
        grep -q "serving clients on" "$log" && break
        kill -0 "$BROKER_PID" 2>/dev/null || fail "droverd exited at start (run $run)"
        sleep 0.1
    done
    grep -q "serving clients on" "$log" || fail "droverd did not start under Valgrind"
    local line
    line=$(grep "serving clients on" "$log" | tail -n 1)
    PRODUCERS=$(echo "$line" | sed -E 's/.*serving clients on ([^ ]+) and workers on ([^ ]+).*/\1/')
    WORKERS=$(echo "$line" | sed -E 's/.*serving clients on ([^ ]+) and workers on ([^ ]+).*/\2/')
    export DROVER_BROKER="$PRODUCERS" DROVER_SERVER_KEY="$T/keys/server" \
           DROVER_CERT="$T/keys/producer_secret"
}

# stop_broker RUN: SIGTERM, then Valgrind's verdict
stop_broker () {
    local run=$1 status=0
    kill -TERM "$BROKER_PID"
    for _ in $(seq 600); do
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    wait "$BROKER_PID" || status=$?
    local vlog="$T/valgrind-$run.log"
    grep -E "ERROR SUMMARY|in use at exit|total heap usage|definitely lost|indirectly lost|possibly lost" "$vlog" | sed 's/^==[0-9]*== /  /' || true
    [ "$status" -ne 99 ] || fail "Valgrind found memory errors or definite leaks in run $run (see above)"
    [ "$status" -eq 0 ] || fail "droverd exited with status $status in run $run"
    grep -q "ERROR SUMMARY: 0 errors" "$vlog" || fail "Valgrind reported errors in run $run"
}

start_workers () {
    local name=$1 queue=$2
    shift 2
    "$DROVER_WORKER" --broker "$WORKERS" --server-key "$T/keys/server" \
        --cert "$T/keys/worker_secret" --queue "$queue" --processes 2 "$@" \
        >"$T/$name.log" 2>&1 &
    PIDS+=("$!")
    LAST_WORKER_PID=$!
}

# Every client call may wait for a broker slowed down by Valgrind
drv () {
    "$DROVER" "$@" --connect-timeout 60
}

admin () {
    DROVER_CERT="$T/keys/admin_secret" drv "$@"
}

# --- Run 1: a fresh broker
start_broker 1
start_workers upper upper --exec 'tr a-z A-Z'
upper_pid=$LAST_WORKER_PID
start_workers fail fail --exec 'false'
fail_pid=$LAST_WORKER_PID

seq 1 300 | sed 's/^/job-/' > "$T/inputs"
drv map -q upper --timeout 240 < "$T/inputs" > "$T/outputs" || fail "drover map failed"
expected=$(tr a-z A-Z < "$T/inputs")
[ "$(cat "$T/outputs")" = "$expected" ] || fail "wrong results from drover map"
echo "run 1: 300 jobs done"

# Failures into the dead letters, then retry and purge
for i in 1 2 3 4; do
    drv submit -q fail --attempts 1 --data "bad-$i" --wait --timeout 60 >/dev/null 2>&1 && fail "a failing job succeeded"
done
dead=$(admin dead list fail | wc -l)
[ "$dead" -eq 4 ] || fail "expected 4 dead letters, got $dead"
first=$(admin dead list fail | head -n 1 | cut -d' ' -f1)
admin dead retry fail "$first" >/dev/null || fail "dead retry"
admin dead purge fail >/dev/null || fail "dead purge"

# A delayed job, cancelled; status of a finished one
id=$(drv submit -q upper --delay 600 --data later)
drv cancel "$id" >/dev/null || fail "cancel"
done_id=$(drv submit -q upper --data x)
drv result "$done_id" --wait --timeout 60 >/dev/null || fail "result"
drv status "$done_id" >/dev/null || fail "status"

# Shared state, locks, events, pause and resume
drv state set vg k1 one >/dev/null || fail "state set"
drv state set vg k2 two >/dev/null || fail "state set"
[ "$(drv state get vg k1)" = one ] || fail "state get"
drv state incr vg counter 5 >/dev/null || fail "state incr"
[ "$(drv state list vg | wc -l)" -eq 3 ] || fail "state list"
drv state del vg k2 >/dev/null || fail "state del"
"$DROVER" lock vg-lock --timeout 30 --connect-timeout 60 -- true || fail "lock"
drv event set vg-event >/dev/null || fail "event set"
drv event wait vg-event --timeout 30 >/dev/null || fail "event wait"
drv event clear vg-event >/dev/null || fail "event clear"
admin pause upper >/dev/null || fail "pause"
admin resume upper >/dev/null || fail "resume"
drv stats >/dev/null || fail "stats"
drv queues >/dev/null || fail "queues"
if [ ${#METRICS_ARGS[@]} -gt 0 ]; then
    for path in /metrics /healthz /readyz /nowhere; do
        status=$(http_get "$path" | tr -d '\r') || fail "no answer from the metrics endpoint for $path"
        echo "run 1: GET $path: $status"
        case $path in
            /metrics|/healthz) [[ $status == "HTTP/1."?" 200"* ]] || fail "GET $path: $status" ;;
        esac
    done
fi

# Jobs left queued for the restart: nobody serves this queue yet
kept=()
for i in 1 2 3; do
    kept+=("$(drv submit -q later --data "kept-$i")") || fail "submit"
done
# The restarted broker gets new ports: the workers go with this one
for pid in "$upper_pid" "$fail_pid"; do
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
done
stop_broker 1
echo "run 1: droverd stopped cleanly, no definite leak or memory error"

# --- Run 2: the same data directory (journal replay)
start_broker 2
start_workers upper upper --exec 'tr a-z A-Z'
start_workers later later --exec 'tr a-z A-Z'
seq 1 50 | sed 's/^/again-/' | drv map -q upper --timeout 240 > "$T/outputs2" \
    || fail "drover map after restart"
[ "$(wc -l < "$T/outputs2")" -eq 50 ] || fail "run 2: missing results"
[ "$(drv state get vg k1)" = one ] || fail "state lost over the restart"
for i in 1 2 3; do
    got=$(drv result "${kept[$((i - 1))]}" --wait --timeout 120) || fail "kept job $i lost"
    [ "$got" = "KEPT-$i" ] || fail "kept job $i: '$got'"
done
stop_broker 2
echo "ok - valgrind: droverd ran 354 jobs, state, sync and admin operations, a restart and two SIGTERMs with no definite leak or memory error"
