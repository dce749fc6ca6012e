#!/usr/bin/env bash
# A broker restart: workers re-register by themselves (re-hello), and new
# jobs run on them without restarting anything but the broker.
. "$(dirname "$0")/lib.sh"

make_keys
start_broker --heartbeat 200
start_workers echo echo 1 --exec cat
expect_eq "$("$DROVER" submit -q echo --data one --wait --timeout 20)" "one" "before restart"

kill -KILL "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null
p_port=${PRODUCERS##*:}
w_port=${WORKERS##*:}
"$DROVERD" --producers "tcp://127.0.0.1:$p_port" --workers "tcp://127.0.0.1:$w_port" \
    --cert "$T/keys/server_secret" --allow "$T/allow" --data-dir "$T/data" \
    >"$T/broker2.log" 2>&1 &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_for 10 grep -q "serving clients" "$T/broker2.log" || fail "broker did not restart on its ports"
wait_for 15 grep -q "worker .* joined" "$T/broker2.log" || fail "worker did not re-register"
expect_eq "$("$DROVER" submit -q echo --data two --wait --timeout 20)" "two" "after restart"
pass "restart"
