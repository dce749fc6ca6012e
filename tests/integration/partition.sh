#!/usr/bin/env bash
# A worker host cut off by a network partition. Two network namespaces made
# by this test (A: broker, a local producer and worker A; B: worker B), a
# veth pair between them with a private /30 that exists only inside them.
# Traffic between them is dropped with iptables inside B while B runs jobs:
# the broker (heartbeat 200 ms, so peers expire after 600 ms) requeues B's
# jobs within the heartbeat expiry and worker A completes every one. Then
# the rules are removed: B (same process) registers again by itself and
# runs a job on a queue only it serves.
#
# Needs root, ip netns and iptables; otherwise prints SKIP and exits 77.
set -u
skip () {
    echo "SKIP: partition: $*"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root for ip netns"
command -v ip >/dev/null || skip "no ip command (iproute2)"
command -v iptables >/dev/null || skip "no iptables"

. "$(dirname "$0")/lib.sh"

NS_A=drv-$$-a
NS_B=drv-$$-b
VETH_A=drva$$
VETH_B=drvb$$
NET=10.213.$((RANDOM % 250))
ADDR_A=$NET.1
ADDR_B=$NET.2
NS_MADE=()

# Everything this test made goes, even on failure: processes (by PID)
# first, so that the namespaces and the veth pair die with them.
partition_cleanup () {
    local rc=$?
    local pid ns
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    PIDS=()
    for ns in "${NS_MADE[@]}"; do
        ip netns delete "$ns" 2>/dev/null
    done
    if [ "$rc" = 77 ]; then
        rm -rf "$T"
        exit 77
    fi
    (exit "$rc")
    cleanup
}
trap partition_cleanup EXIT

# in_a / in_b CMD...: run CMD inside a namespace. Long-running processes are
# started with `ip netns exec NS CMD &` itself (not through these functions,
# which would put a subshell between $! and the process): ip execs CMD, so
# $! is the process's own PID.
in_a () { ip netns exec "$NS_A" "$@"; }
in_b () { ip netns exec "$NS_B" "$@"; }
now_ms () { date +%s%3N; }

# ---- the two hosts -------------------------------------------------------------
ip netns add "$NS_A" 2>"$T/netns.err" || skip "ip netns add failed: $(cat "$T/netns.err")"
NS_MADE+=("$NS_A")
ip netns add "$NS_B" 2>"$T/netns.err" || skip "ip netns add failed: $(cat "$T/netns.err")"
NS_MADE+=("$NS_B")
in_a ip link set lo up || fail "lo up in A"
in_b ip link set lo up || fail "lo up in B"
# Both ends are made inside the namespaces: nothing touches the host's.
in_a ip link add "$VETH_A" type veth peer name "$VETH_B" netns "$NS_B" || fail "veth pair"
in_a ip addr add "$ADDR_A/30" dev "$VETH_A" || fail "address in A"
in_b ip addr add "$ADDR_B/30" dev "$VETH_B" || fail "address in B"
in_a ip link set "$VETH_A" up || fail "veth up in A"
in_b ip link set "$VETH_B" up || fail "veth up in B"
in_b iptables -S >/dev/null 2>"$T/iptables.err" \
    || skip "iptables does not work in a namespace here: $(head -c 300 "$T/iptables.err")"
if command -v ping >/dev/null; then
    wait_for 5 in_b ping -c 1 -W 1 "$ADDR_A" >/dev/null 2>&1 \
        || fail "B cannot reach A over the veth pair"
fi

# ---- broker and workers ----------------------------------------------------------
make_keys
: >"$T/broker.log"
ip netns exec "$NS_A" "$DROVERD" --producers tcp://127.0.0.1:0 --workers "tcp://$ADDR_A:0" \
    --cert "$T/keys/server_secret" --allow "$T/allow" --data-dir "$T/data" \
    --heartbeat 200 >>"$T/broker.log" 2>&1 &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_for 10 grep -q "serving clients on" "$T/broker.log" || fail "broker did not start"
line=$(grep "serving clients on" "$T/broker.log" | tail -n 1)
PRODUCERS=$(echo "$line" | sed -E 's/.*serving clients on ([^ ]+) and workers on ([^ ]+).*/\1/')
WORKERS=$(echo "$line" | sed -E 's/.*serving clients on ([^ ]+) and workers on ([^ ]+).*/\2/')
case "$WORKERS" in
    "tcp://$ADDR_A:"*) ;;
    *) fail "broker's worker endpoint is $WORKERS, not on $ADDR_A" ;;
esac
export DROVER_BROKER="$PRODUCERS" DROVER_SERVER_KEY="$T/keys/server" \
       DROVER_CERT="$T/keys/producer_secret"

# A: fast, results "A:payload". B: slow, marks each job it starts, results
# "B:payload". --processes 0: one process each, nothing that could restart
# it behind our back, so an unchanged PID means no restart.
worker_args=(--broker "$WORKERS" --server-key "$T/keys/server" --cert "$T/keys/worker_secret"
             --processes 0 --prefetch 0)
ip netns exec "$NS_A" "$DROVER_WORKER" "${worker_args[@]}" --name wa --queue q --concurrency 1 \
    --exec 'sleep 0.2; printf A:; cat' >"$T/worker-a.log" 2>&1 &
WORKER_A_PID=$!
PIDS+=("$WORKER_A_PID")
ip netns exec "$NS_B" "$DROVER_WORKER" "${worker_args[@]}" --name wb --queue q --queue onlyb --concurrency 2 \
    --exec "touch '$T/started-b.'\$DROVER_JOB_ID; sleep 3; printf B:; cat" >"$T/worker-b.log" 2>&1 &
WORKER_B_PID=$!
PIDS+=("$WORKER_B_PID")
wait_for 10 grep -q "worker wa joined" "$T/broker.log" || fail "worker A did not join"
wait_for 10 grep -q "worker wb joined" "$T/broker.log" || fail "worker B did not join from $NS_B"
# By now ip has exec'd each program in place: the PIDs are theirs.
for pid in "$BROKER_PID" "$WORKER_A_PID" "$WORKER_B_PID"; do
    comm=$(cat "/proc/$pid/comm" 2>/dev/null)
    case "$comm" in
        droverd|drover-worker) ;;
        *) fail "PID $pid is '$comm', not droverd or drover-worker" ;;
    esac
done

# ---- jobs, some of them running on B --------------------------------------------
ids=()
for i in 1 2 3 4 5 6; do
    id=$(in_a "$DROVER" submit -q q --data "job$i" --attempts 5 --timeout 10) \
        || fail "submit job$i"
    ids+=("$id")
done
started_on_b () { compgen -G "$T/started-b.*" >/dev/null; }
wait_for 10 started_on_b || fail "no job started on worker B"
b_jobs=()
for f in "$T"/started-b.*; do
    b_jobs+=("${f##*/started-b.}")
done

# ---- partition -----------------------------------------------------------------
in_b iptables -A INPUT -s "$ADDR_A" -j DROP || fail "iptables INPUT rule"
in_b iptables -A OUTPUT -d "$ADDR_A" -j DROP || fail "iptables OUTPUT rule"
cut_at=$(now_ms)
wait_for 5 grep -q "worker wb left .*requeueing" "$T/broker.log" \
    || fail "the broker did not requeue worker B's jobs within 5 s of the partition"
requeue_ms=$(( $(now_ms) - cut_at ))
[ "$requeue_ms" -le 2500 ] \
    || fail "requeue took $requeue_ms ms after the cut (heartbeat 200 ms: expiry after ~600 ms)"
requeued=$(grep "worker wb left" "$T/broker.log" | tail -n 1 | sed -E 's/.*requeueing ([0-9]+) jobs.*/\1/')
[ "${requeued:-0}" -ge 1 ] || fail "the broker requeued ${requeued:-no} jobs of worker B"

# Every job completes, B's on A (B can neither report nor hear us now).
for i in 1 2 3 4 5 6; do
    id=${ids[$((i - 1))]}
    result=$(in_a "$DROVER" result "$id" --wait --timeout 15) \
        || fail "job$i ($id) did not complete within 15 s of the partition"
    case "$result" in
        "A:job$i") ;;
        *) fail "job$i: result '$result', expected 'A:job$i' (worker A)" ;;
    esac
done
for id in "${b_jobs[@]}"; do
    printf '%s\n' "${ids[@]}" | grep -qx "$id" || fail "B ran an unknown job $id"
done
done_ms=$(( $(now_ms) - cut_at ))
kill -0 "$WORKER_B_PID" 2>/dev/null || fail "worker B died during the partition"

# ---- heal ---------------------------------------------------------------------
joins_before=$(grep -c "worker wb joined" "$T/broker.log")
in_b iptables -D INPUT -s "$ADDR_A" -j DROP || fail "removing the INPUT rule"
in_b iptables -D OUTPUT -d "$ADDR_A" -j DROP || fail "removing the OUTPUT rule"
healed_at=$(now_ms)
rejoined () { [ "$(grep -c "worker wb joined" "$T/broker.log")" -gt "$joins_before" ]; }
wait_for 15 rejoined || fail "worker B did not register again within 15 s of the heal"
rejoin_ms=$(( $(now_ms) - healed_at ))
kill -0 "$WORKER_B_PID" 2>/dev/null || fail "worker B is gone"
[ "$(cat "/proc/$WORKER_B_PID/comm" 2>/dev/null)" = drover-worker ] \
    || fail "PID $WORKER_B_PID is no longer worker B"
[ "$(ip netns identify "$WORKER_B_PID" 2>/dev/null)" = "$NS_B" ] \
    || fail "PID $WORKER_B_PID is not in $NS_B"

# B takes new work: a queue only it serves.
result=$(in_a "$DROVER" submit -q onlyb --data after --wait --timeout 20) \
    || fail "the job on onlyb did not complete after the heal"
expect_eq "$result" "B:after" "job on onlyb after the heal"
# B's late reports for the jobs it lost (sent once it was back) changed
# nothing: those jobs keep worker A's results.
for id in "${b_jobs[@]}"; do
    result=$(in_a "$DROVER" result "$id") || fail "result of $id after the heal"
    case "$result" in
        A:job*) ;;
        *) fail "job $id: result '$result' after the heal, expected worker A's" ;;
    esac
done
pass "requeued $requeued job(s) of B ${requeue_ms} ms after the cut, all 6 done on A within ${done_ms} ms; B (pid $WORKER_B_PID, not restarted) rejoined ${rejoin_ms} ms after the heal and ran a new job"
