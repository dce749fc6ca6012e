# broker_restart.sh - stopping and restarting the broker of a test on the
# same ports and data directory. Sourced after lib.sh (uses T, PIDS,
# BROKER_PID, PRODUCERS, WORKERS, fail, wait_for); not a test itself.

# stop_broker SIGNAL: sends SIGNAL (KILL, TERM) to the broker and reaps it
stop_broker () {
    kill -"$1" "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
    return 0
}

# broker_args [EXTRA ARGS...]: droverd's arguments for the ports and data
# directory of the broker that start_broker started, into BROKER_ARGS
broker_args () {
    BROKER_ARGS=(--producers "tcp://127.0.0.1:${PRODUCERS##*:}"
                 --workers "tcp://127.0.0.1:${WORKERS##*:}"
                 --cert "$T/keys/server_secret" --allow "$T/allow" --data-dir "$T/data" "$@")
}

# restart_broker NAME [EXTRA ARGS...]: droverd again on the same ports and
# data directory; sets BROKER_PID. Log in $T/NAME.log.
restart_broker () {
    local log="$T/$1.log"
    shift
    broker_args "$@"
    "$DROVERD" "${BROKER_ARGS[@]}" >"$log" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    wait_for 10 grep -q "serving clients on" "$log" || fail "broker did not restart ($log)"
}
