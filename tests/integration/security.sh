#!/usr/bin/env bash
# CURVE by default: keys not in the allow-list, plaintext peers and wrong
# roles are refused with exit 3 and a clear message, never a hang.
. "$(dirname "$0")/lib.sh"

make_keys
# keygen: secret file private, role recorded, public file has no secret
expect_eq "$(stat -c %a "$T/keys/producer_secret")" "600" "secret certificate mode"
grep -q 'role = "worker"' "$T/keys/worker" || fail "role missing from certificate"
grep -q 'secret-key' "$T/keys/worker" && fail "public certificate holds a secret key"
"$DROVER" keygen "$T/keys/outsider" >/dev/null || fail "keygen outsider"

start_broker --no-metrics
start_workers echo echo 1 --exec cat
expect_eq "$("$DROVER" submit -q echo --data hi --wait --timeout 20)" "hi" "allowed producer"

# A key missing from the allow-list
start=$SECONDS
DROVER_CERT="$T/keys/outsider_secret" "$DROVER" submit -q echo --data x --timeout 10 \
    2>"$T/outsider.err" >/dev/null
rc=$?
expect_eq "$rc" "3" "exit code for a key not in the allow-list"
[ $((SECONDS - start)) -lt 10 ] || fail "refusal took too long"
grep -qi "auth\|refused\|allow" "$T/outsider.err" || fail "no clear message: $(cat "$T/outsider.err")"
grep -q "not in allow-list" "$T/broker.log" || fail "broker did not log the refused key"

# Plaintext client against a CURVE broker
"$DROVER" submit -q echo --data x --insecure --timeout 10 2>"$T/plain.err" >/dev/null
expect_eq "$?" "3" "exit code for a plaintext client"
[ -s "$T/plain.err" ] || fail "no message for a plaintext client"

# Roles: a worker key may not submit; a producer key may not serve
DROVER_CERT="$T/keys/worker_secret" "$DROVER" submit -q echo --data x --timeout 10 \
    2>"$T/role.err" >/dev/null
expect_eq "$?" "3" "exit code for a worker key submitting"
grep -qi "role\|denied\|may not" "$T/role.err" || fail "no clear message: $(cat "$T/role.err")"
timeout 20 "$DROVER_WORKER" --broker "$WORKERS" --server-key "$T/keys/server" \
    --cert "$T/keys/producer_secret" --queue echo --processes 1 --exec cat \
    >"$T/badworker.log" 2>&1
expect_eq "$?" "3" "exit code for a producer key serving"

# Missing key files are a clear error too
DROVER_CERT="$T/keys/nope_secret" "$DROVER" submit -q echo --data x --timeout 5 \
    2>"$T/nokey.err" >/dev/null
expect_eq "$?" "3" "exit code for a missing certificate"
grep -q "nope_secret" "$T/nokey.err" || fail "message does not name the missing file"

# The broker keeps serving the honest client throughout
expect_eq "$("$DROVER" submit -q echo --data still --wait --timeout 20)" "still" "after refusals"

# Without --cert, droverd creates its certificate once and reuses it
"$DROVERD" --producers tcp://127.0.0.1:0 --workers tcp://127.0.0.1:0 --no-metrics \
    --data-dir "$T/auto" --allow "$T/allow" >"$T/auto1.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_for 10 grep -q "serving clients" "$T/auto1.log" || fail "auto-cert broker did not start"
kill -TERM "$pid"; wait "$pid"
[ -f "$T/auto/server.cert" ] && [ -f "$T/auto/server.cert_secret" ] || fail "no generated certificate"
expect_eq "$(stat -c %a "$T/auto/server.cert_secret")" "600" "generated secret mode"
key1=$(grep public-key "$T/auto/server.cert")
"$DROVERD" --producers tcp://127.0.0.1:0 --workers tcp://127.0.0.1:0 --no-metrics \
    --data-dir "$T/auto" --allow "$T/allow" >"$T/auto2.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_for 10 grep -q "serving clients" "$T/auto2.log" || fail "auto-cert broker did not restart"
grep -q "server public certificate: $T/auto/server.cert" "$T/auto2.log" || fail "public certificate path not logged"
kill -TERM "$pid"; wait "$pid"
expect_eq "$(grep public-key "$T/auto/server.cert")" "$key1" "server key after restart"

# --insecure: plaintext both ends, with a warning in the log
"$DROVERD" --producers tcp://127.0.0.1:0 --workers tcp://127.0.0.1:0 --no-metrics --insecure \
    --data-dir "$T/plain" >"$T/insecure.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_for 10 grep -q "serving clients" "$T/insecure.log" || fail "insecure broker did not start"
grep -qi "insecure" "$T/insecure.log" || fail "no warning for --insecure"
ep=$(grep "serving clients on" "$T/insecure.log" | sed -E 's/.*serving clients on ([^ ]+) .*/\1/')
"$DROVER" stats --broker "$ep" --insecure --timeout 10 >/dev/null || fail "plaintext client to plaintext broker"
"$DROVER" stats --broker "$ep" --timeout 10 2>/dev/null >/dev/null
expect_eq "$?" "3" "CURVE client to a plaintext broker"
pass "security"
