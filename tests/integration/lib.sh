# lib.sh - shared helpers for Drover's integration tests.
#
# Each test sources this file. It gets the binaries from the environment
# (set by ctest), works in a fresh temporary directory, starts real
# processes on 127.0.0.1 with ports the OS picks, and on exit stops every
# process it started, by PID, and removes the directory.
set -u

: "${DROVERD:?DROVERD must name the droverd binary}"
: "${DROVER:?DROVER must name the drover binary}"
: "${DROVER_WORKER:?DROVER_WORKER must name the drover-worker binary}"
: "${DROVER_PLUGIN:=}"

T=$(mktemp -d "${TMPDIR:-/tmp}/drover-test.XXXXXX")
PIDS=()
TEST_NAME=$(basename "$0" .sh)
# Keep these out of the tests' way: each test sets what it needs
unset DROVER_BROKER DROVER_SERVER_KEY DROVER_CERT DROVER_INSECURE

cleanup () {
    local rc=$?
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ $rc -ne 0 ]; then
        echo "--- $TEST_NAME failed; logs:" >&2
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            echo "--- $f" >&2
            tail -n 40 "$f" >&2
        done
    fi
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail () {
    echo "FAIL ($TEST_NAME): $*" >&2
    exit 1
}

pass () {
    echo "ok - $TEST_NAME: $*"
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq () {
    [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# expect_code CODE CMD... : runs CMD, checks its exit status
expect_code () {
    local want=$1
    shift
    "$@"
    local got=$?
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want"
}

# wait_for SECONDS CMD... : polls CMD until it succeeds
wait_for () {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    until "$@"; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.1
    done
}

# keys: a server certificate, and producer/worker/admin certificates whose
# public halves are in the allow-list directory $T/allow.
make_keys () {
    mkdir -p "$T/keys" "$T/allow"
    local role
    for role in producer worker admin; do
        "$DROVER" keygen "$T/keys/$role" --role "$role" >/dev/null || fail "keygen $role"
        cp "$T/keys/$role" "$T/allow/$role.cert"
    done
    "$DROVER" keygen "$T/keys/server" >/dev/null || fail "keygen server"
}

# start_broker [EXTRA ARGS...]: starts droverd with CURVE and the keys
# above; sets BROKER_PID, PRODUCERS, WORKERS. Log in $T/broker.log.
start_broker () {
    local log="$T/broker.log"
    : > "$log"
    "$DROVERD" --producers tcp://127.0.0.1:0 --workers tcp://127.0.0.1:0 \
        --cert "$T/keys/server_secret" --allow "$T/allow" --data-dir "$T/data" \
        "$@" >>"$log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    wait_for 10 grep -q "serving clients on" "$log" || fail "broker did not start"
    local line
    line=$(grep "serving clients on" "$log" | tail -n 1)
    PRODUCERS=$(echo "$line" | sed -E 's/.*serving clients on ([^ ]+) and workers on ([^ ]+).*/\1/')
    WORKERS=$(echo "$line" | sed -E 's/.*serving clients on ([^ ]+) and workers on ([^ ]+).*/\2/')
    export DROVER_BROKER="$PRODUCERS" DROVER_SERVER_KEY="$T/keys/server" \
           DROVER_CERT="$T/keys/producer_secret"
}

# start_workers NAME QUEUE PROCESSES HANDLER-ARGS...: a drover-worker
# supervisor; sets LAST_WORKER_PID. Log in $T/NAME.log.
start_workers () {
    local name=$1 queue=$2 processes=$3
    shift 3
    "$DROVER_WORKER" --broker "$WORKERS" --server-key "$T/keys/server" \
        --cert "$T/keys/worker_secret" --queue "$queue" --processes "$processes" \
        "$@" >"$T/$name.log" 2>&1 &
    LAST_WORKER_PID=$!
    PIDS+=("$LAST_WORKER_PID")
}

# stats_field QUEUE FIELD: a number from `drover stats --json`-less output
# is fragile, so tests ask `drover status` per job instead where possible.
