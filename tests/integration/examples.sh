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

# The three classic manager listings, in Drover's words
: "${EXAMPLES_DIR:?}"
for n in 1 2; do
    DROVER_BROKER="$WORKERS" DROVER_CERT="$T/keys/worker_secret" \
        "$EXAMPLES_DIR/whoami" worker >"$T/whoami-$n.log" 2>&1 &
    PIDS+=("$!")
done
"$EXAMPLES_DIR/whoami" submit 6 > "$T/whoami.out" || fail "whoami submit"
expect_eq "$(grep -c 'ran in process' "$T/whoami.out")" "6" "whoami answers"

DROVER_BROKER="$WORKERS" DROVER_CERT="$T/keys/worker_secret" \
    "$EXAMPLES_DIR/queue_pass" receive >"$T/receiver.out" 2>"$T/receiver.log" &
PIDS+=("$!")
"$EXAMPLES_DIR/queue_pass" send sample 3 4 5 > "$T/pass.out" || fail "queue_pass send"
grep -q "sample sum=12 (checked)" "$T/pass.out" || fail "queue_pass: $(cat "$T/pass.out")"
wait_for 5 grep -q "received sample with 3 values" "$T/receiver.out" || fail "receiver did not print the object"

"$EXAMPLES_DIR/namespace" read 4 > "$T/reader.out" 2>"$T/reader.log" &
reader=$!
PIDS+=("$reader")
wait_for 10 grep -q "following namespace shared" "$T/reader.out" \
    || fail "namespace reader did not start: $(cat "$T/reader.log")"
"$EXAMPLES_DIR/namespace" update 5 || fail "namespace update"
wait "$reader" || fail "namespace read failed: $(cat "$T/reader.log")"
grep -q "shared.y = 25" "$T/reader.out" || fail "reader missed a change: $(cat "$T/reader.out")"
grep -q "updates seen by the replica: 5" "$T/reader.out" || fail "replica: $(cat "$T/reader.out")"
pass "examples"
