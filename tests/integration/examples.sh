#!/usr/bin/env bash
# The example programs work as the README says: a C worker and a C
# producer, configured through DROVER_* variables, over CURVE.
. "$(dirname "$0")/lib.sh"
: "${EXAMPLE_PRODUCER:?}" "${EXAMPLE_WORKER:?}"

make_keys
start_broker
DROVER_BROKER="$WORKERS" DROVER_CERT="$T/keys/worker_secret" \
    "$EXAMPLE_WORKER" reverse >"$T/example-worker.log" 2>&1 &
worker=$!
PIDS+=("$worker")
"$EXAMPLE_PRODUCER" reverse drover queue > "$T/out" || fail "producer failed"
expect_eq "$(cat "$T/out")" "$(printf 'drover -> revord\nqueue -> eueuq')" "example output"
kill -TERM "$worker"
wait "$worker"
expect_eq "$?" "0" "example worker exit after SIGTERM"
expect_code 2 "$EXAMPLE_PRODUCER" reverse
pass "examples"
