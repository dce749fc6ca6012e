#!/usr/bin/env bash
# Faults: a worker killed mid-job, a handler that crashes, one that hangs
# past its timeout, one that exits non-zero. Every job ends, once, with
# the right outcome, and the broker keeps serving.
. "$(dirname "$0")/lib.sh"

make_keys
start_broker --heartbeat 200 --backoff 100
start_workers slow-a slow 2 --exec "sleep 0.2; cat"
victim=$LAST_WORKER_PID
start_workers slow-b slow 2 --exec "sleep 0.2; cat"

# Both hosts' processes (2 each) have joined before the jobs go out
joined4 () {
    [ "$(grep -c "worker .* joined" "$T/broker.log")" -ge 4 ]
}
wait_for 20 joined4 || fail "workers did not join: $(grep joined "$T/broker.log")"

# 60 jobs in flight; kill one whole worker host (supervisor and children)
seq 1 60 | sed 's/^/job-/' > "$T/inputs"
"$DROVER" map -q slow < "$T/inputs" > "$T/mapped" 2>"$T/map.err" &
map_pid=$!
PIDS+=("$map_pid")
sleep 1
pkill -KILL -P "$victim"
kill -KILL "$victim"
wait "$map_pid" || fail "map failed after a worker was killed: $(cat "$T/map.err")"
cmp -s "$T/inputs" "$T/mapped" || fail "results differ after a worker was killed"
grep -q "requeueing" "$T/broker.log" || fail "broker did not requeue the dead worker's jobs"

# A handler that crashes its process: retried, then failed, clearly
if [ -n "$DROVER_PLUGIN" ]; then
    start_workers crash crash 1 --plugin "$DROVER_PLUGIN:crash"
    "$DROVER" submit -q crash --data x --attempts 2 --wait --timeout 30 >/dev/null 2>"$T/crash.err"
    expect_eq "$?" "1" "exit code for a crashing handler"
    grep -q "2 attempts" "$T/crash.err" || fail "crash error: $(cat "$T/crash.err")"
fi

# A handler that hangs past the job timeout
start_workers hang hang 1 --exec "sleep 60"
"$DROVER" submit -q hang --data x --job-timeout 1 --attempts 2 --wait --timeout 30 \
    >/dev/null 2>"$T/hang.err"
expect_eq "$?" "1" "exit code for a hanging handler"
grep -q "timed out" "$T/hang.err" || fail "hang error: $(cat "$T/hang.err")"

# A handler that exits non-zero: its stderr is the error
start_workers bad bad 1 --exec "echo 'no such thing' >&2; exit 3"
"$DROVER" submit -q bad --data x --attempts 1 --wait --timeout 30 >/dev/null 2>"$T/bad.err"
expect_eq "$?" "1" "exit code for a failing handler"
grep -q "no such thing" "$T/bad.err" || fail "stderr not in the error: $(cat "$T/bad.err")"

# The survivors still work
expect_eq "$("$DROVER" submit -q slow --data fine --wait --timeout 20)" "fine" "after faults"
pass "faults"
