#!/usr/bin/env bash
# k8s-pods.sh - runs droverd, drover-worker and a producer the way the pods
# of deploy/k8s run them, without a cluster: the same DROVER_* variables
# (read from the base's ConfigMap generators), the workers' arguments, and
# key files laid out as the kubelet lays out a Secret volume (a timestamped
# directory, a ..data link to it, one link per key; group-readable as
# fsGroup makes them). Only the path prefixes (/etc/drover,
# /var/lib/drover), the endpoints (127.0.0.1, ports the OS picks) and the
# plugin's location are changed. Checks:
#
#  - droverd refuses the group-readable secret certificate without
#    DROVER_ALLOW_OPEN_KEY, and starts with the manifests' settings;
#  - the probes' /healthz and /readyz answer 200, and /metrics has the
#    gauges the autoscalers query (drover_queue_depth, drover_queue_running),
#    counting a waiting job and a job in hand;
#  - the example producer Job's pipeline gets all its results;
#  - a key added by updating the allow-list Secret (the kubelet's atomic
#    swap of ..data) is admitted within seconds, without a restart;
#  - a worker pod told to stop (SIGTERM) finishes its job in hand and exits 0
#    well within the grace period the Deployment gives it.
#
# Environment: DROVERD, DROVER, DROVER_WORKER, DROVER_PLUGIN.
set -u

: "${DROVERD:?DROVERD must name the droverd binary}"
: "${DROVER:?DROVER must name the drover binary}"
: "${DROVER_WORKER:?DROVER_WORKER must name the drover-worker binary}"
: "${DROVER_PLUGIN:?DROVER_PLUGIN must name the example plugin}"
BASE=${BASE:-$(cd "$(dirname "$0")/../../deploy/k8s/base" && pwd)}
. "$(dirname "$0")/manifest.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/drover-pods.XXXXXX")
PIDS=()
cleanup () {
    local rc=$? pid
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
        for f in "$T"/*.log; do
            [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
        done
    fi
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
unset DROVER_BROKER DROVER_SERVER_KEY DROVER_CERT DROVER_INSECURE DROVER_CONFIG

fail () {
    echo "FAIL (k8s-pods): $*"
    exit 1
}

wait_for () {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    until "$@"; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.1
    done
}

# secret_volume DIR FILE...: the files as a Secret volume at DIR, mode 0440
secret_volume () {
    local dir=$1 stamp f
    shift
    stamp="..$(date +%Y_%m_%d_%H_%M_%S).$RANDOM"
    mkdir -p "$dir/$stamp"
    for f in "$@"; do
        cp "$f" "$dir/$stamp/"
        chmod 0440 "$dir/$stamp/$(basename "$f")"
    done
    ln -sfn "$stamp" "$dir/..data_tmp"
    mv -T "$dir/..data_tmp" "$dir/..data"       #  the atomic swap
    for f in "$@"; do
        ln -sfn "..data/$(basename "$f")" "$dir/$(basename "$f")"
    done
    #  What the previous version had and this one has not: gone
    for f in "$dir"/*; do
        [ -e "$f" ] || rm -f "$f"
    done
    find "$dir" -maxdepth 1 -name '..20*' ! -name "$stamp" -exec rm -rf {} +
}

# The manifests' settings with this test's paths
remap () {
    sed -e "s#/etc/drover#$T/etc/drover#g" -e "s#/var/lib/drover#$T/var/lib/drover#g" \
        -e "s#/usr/local/lib/drover/$(basename "$DROVER_PLUGIN")#$DROVER_PLUGIN#g"
}
mapfile -t broker_env < <(literals drover-broker-env | remap)
mapfile -t worker_env < <(literals drover-worker-env | remap)
mapfile -t worker_args < <(worker_args | remap)
[ ${#broker_env[@]} -gt 0 ] && [ ${#worker_env[@]} -gt 0 ] && [ ${#worker_args[@]} -gt 0 ] \
    || fail "could not read the settings from $BASE"
grep -q "^DROVER_ALLOW_OPEN_KEY=" <(printf '%s\n' "${broker_env[@]}") \
    || fail "the broker's settings no longer accept a group-readable secret (DROVER_ALLOW_OPEN_KEY)"

# Keys, and the Secret volumes of the example overlay
mkdir -p "$T/keys" "$T/var/lib/drover"
for k in worker producer admin producer2; do
    "$DROVER" keygen "$T/keys/$k" --role "${k%2}" >/dev/null || fail "keygen $k"
done
"$DROVER" keygen "$T/keys/server" >/dev/null || fail "keygen server"
secret_volume "$T/etc/drover/broker" "$T/keys/server_secret"
secret_volume "$T/etc/drover/allow" "$T/keys/worker" "$T/keys/producer" "$T/keys/admin"
secret_volume "$T/etc/drover/keys" "$T/keys/server" "$T/keys/worker_secret"
secret_volume "$T/producer-keys" "$T/keys/server" "$T/keys/producer_secret"
secret_volume "$T/producer2-keys" "$T/keys/server" "$T/keys/producer2_secret"

ENDPOINTS=(DROVER_PRODUCERS=tcp://127.0.0.1:0 DROVER_WORKERS=tcp://127.0.0.1:0
           DROVER_STATE=tcp://127.0.0.1:0 DROVER_METRICS=tcp://127.0.0.1:0)

# Without DROVER_ALLOW_OPEN_KEY the broker refuses the group-readable key
no_open=()
for pair in "${broker_env[@]}"; do
    [[ $pair == DROVER_ALLOW_OPEN_KEY=* ]] || no_open+=("$pair")
done
if env -i PATH="$PATH" "${no_open[@]}" "${ENDPOINTS[@]}" timeout 10 "$DROVERD" \
       > "$T/refused.log" 2>&1; then
    fail "droverd started with a group-readable secret certificate and no DROVER_ALLOW_OPEN_KEY"
fi
grep -q "accessible to group" "$T/refused.log" || fail "droverd did not say why it refused: $(cat "$T/refused.log")"
echo "ok - without DROVER_ALLOW_OPEN_KEY droverd refuses the Secret-mounted key (mode 0440)"

# The broker pod
: > "$T/broker.log"
env -i PATH="$PATH" "${broker_env[@]}" "${ENDPOINTS[@]}" "$DROVERD" > "$T/broker.log" 2>&1 &
PIDS+=($!)
wait_for 10 grep -q "serving clients on" "$T/broker.log" || fail "broker did not start"
line=$(grep "serving clients on" "$T/broker.log" | tail -n 1)
# (the manifests ask for JSON logs)
PRODUCERS=$(grep -oE 'tcp://[0-9.]+:[0-9]+' <<<"$line" | sed -n 1p)
WORKERS=$(grep -oE 'tcp://[0-9.]+:[0-9]+' <<<"$line" | sed -n 2p)
[ -n "$PRODUCERS" ] && [ -n "$WORKERS" ] || fail "no endpoints in the broker's log: $line"
[ -n "$(find "$T/var/lib/drover" -name 'journal*' -print -quit)" ] \
    || fail "no journal under the data directory the manifests name"
echo "ok - droverd runs with the manifests' settings (clients $PRODUCERS, workers $WORKERS)"

# The probes: GET /healthz and /readyz on the HTTP endpoint, which the
# broker names in its log
http_get () {
    local port=$1 path=$2 reply
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
    reply=$(timeout 5 cat <&3)
    exec 3<&-
    printf '%s\n' "$reply"
}
HTTP_PORT=$(grep -iE '(http|metrics)' "$T/broker.log" | grep -oE 'tcp://127\.0\.0\.1:[0-9]+' \
    | head -n 1 | sed 's/.*://')
[ -n "$HTTP_PORT" ] || fail "the broker names no HTTP endpoint in its log: the probes have nothing to ask"
"$DROVER" health --url "http://127.0.0.1:$HTTP_PORT/healthz" > /dev/null 2>&1 \
    || fail "liveness: /healthz on port $HTTP_PORT does not answer 200"
wait_for 10 "$DROVER" health --url "http://127.0.0.1:$HTTP_PORT/readyz" \
    || fail "readiness: /readyz on port $HTTP_PORT never answered 200"
echo "ok - the probes' endpoints answer: /healthz and /readyz on the HTTP port"

# A worker pod: its ConfigMap, its args; only the broker's address differs
start_worker () {
    local log=$1
    shift
    env -i PATH="$PATH" "${worker_env[@]}" DROVER_BROKER="$WORKERS" \
        "$DROVER_WORKER" "$@" > "$T/$log" 2>&1 &
    PIDS+=($!)
    LAST=$!
}
start_worker worker.log "${worker_args[@]}"

# The example producer Job's pipeline, with its environment
producer () {
    local keys=$1
    shift
    env -i PATH="$PATH" DROVER_BROKER="$PRODUCERS" DROVER_SERVER_KEY="$keys/server" \
        DROVER_CERT="$keys/$(basename "$keys" -keys)_secret" "$@"
}
out=$(seq 1 20 | sed 's/^/job number /' | producer "$T/producer-keys" timeout 30 "$DROVER" map -q upper)
[ "$(wc -l <<<"$out")" = 20 ] || fail "the producer got $(wc -l <<<"$out") results, not 20: $out"
[ "$(sed -n 20p <<<"$out")" = "JOB NUMBER 20" ] || fail "unexpected results: $(head -3 <<<"$out")"
echo "ok - the producer Job's pipeline: 20 jobs, 20 results in order, through the worker pod"

# What the autoscalers read: the per-queue gauges of jobs waiting and of
# jobs at the workers. A queue nobody serves holds its job as depth.
# expect_series LINE...: each line is on /metrics now
expect_series () {
    local metrics line
    metrics=$(http_get "$HTTP_PORT" /metrics)
    for line in "$@"; do
        grep -qxF "$line" <<<"$metrics" \
            || fail "/metrics has no line '$line': $(grep -E 'queue_(depth|running)' <<<"$metrics" | head -6)"
    done
}
producer "$T/producer-keys" "$DROVER" submit -q backlog --data waiting > /dev/null \
    || fail "submit to an unserved queue"
expect_series 'drover_queue_depth{queue="upper"} 0' 'drover_queue_running{queue="upper"} 0' \
              'drover_queue_depth{queue="backlog"} 1' 'drover_queue_running{queue="backlog"} 0'
echo "ok - /metrics: drover_queue_depth and drover_queue_running per queue (a waiting job counts as depth 1)"

# A new producer key, added by updating the allow-list Secret
producer "$T/producer2-keys" timeout 10 "$DROVER" submit -q upper --data before --wait --timeout 3 \
    > "$T/before.out" 2>&1
rc=$?
[ $rc = 3 ] || fail "a key not in the allow-list: exit $rc, not 3 (refused): $(cat "$T/before.out")"
broker_pid=${PIDS[0]}
secret_volume "$T/etc/drover/allow" "$T/keys/worker" "$T/keys/producer" "$T/keys/admin" "$T/keys/producer2"
start=$(date +%s.%N)
admitted () {
    [ "$(producer "$T/producer2-keys" timeout 10 "$DROVER" submit -q upper --data after --wait \
        --timeout 3 2>/dev/null)" = AFTER ]
}
wait_for 15 admitted || fail "the key added to the allow-list Secret was not admitted within 15 s"
grep -q 'allow.*: 4 keys' "$T/broker.log" || fail "the broker did not log the allow-list's new size"
kill -0 "$broker_pid" 2>/dev/null || fail "the broker is gone"
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "ok - a key added by updating the allow-list Secret is admitted after $took s, no restart"

# Stopping a worker pod: the job in hand finishes, then the worker exits 0
grace=$(sed -n 's/^      terminationGracePeriodSeconds: //p' "$BASE/worker-deployment.yaml")
start_worker napper.log --queue nap --plugin "$DROVER_PLUGIN:sleep"
napper=$LAST
id=$(producer "$T/producer-keys" "$DROVER" submit -q nap --data 5) || fail "submit to nap: $id"
running () {
    producer "$T/producer-keys" "$DROVER" status "$id" 2>/dev/null | grep -qw running
}
wait_for 10 running || fail "the nap job never ran: $(producer "$T/producer-keys" "$DROVER" status "$id" 2>&1)"
expect_series 'drover_queue_running{queue="nap"} 1' 'drover_queue_depth{queue="nap"} 0'
stop_start=$(date +%s.%N)
kill -TERM "$napper"
wait_for "$grace" bash -c "! kill -0 $napper 2>/dev/null" || fail "the worker did not stop within ${grace} s"
wait "$napper"
rc=$?
stopped=$(awk -v a="$stop_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
[ "$rc" = 0 ] || fail "the stopped worker exited $rc, not 0"
result=$(producer "$T/producer-keys" "$DROVER" result "$id" --wait --timeout 10 2>&1)
[ "$result" = "slept 5" ] || fail "the job in hand did not finish: $result"
awk -v s="$stopped" 'BEGIN { exit !(s >= 1.0) }' || fail "the worker stopped after $stopped s, before its job could have finished"
echo "ok - SIGTERM: the worker finished its 5 s job (counted as running 1) and exited 0 after ${stopped} s (grace ${grace} s)"
