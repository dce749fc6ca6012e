#!/usr/bin/env bash
# The whole job path over CURVE: submit (wait / no wait / stdin / each
# line), result, status, map in input order, cancel, stats, big payloads.
. "$(dirname "$0")/lib.sh"

make_keys
start_broker
start_workers upper upper 2 --exec "tr a-z A-Z"

out=$("$DROVER" submit -q upper --data hello --wait --timeout 20) || fail "submit --wait"
expect_eq "$out" "HELLO" "submit --wait result"

id=$("$DROVER" submit -q upper --data abc) || fail "submit"
[[ "$id" =~ ^[0-9a-f]{32}$ ]] || fail "submit printed '$id', not a job id"
out=$("$DROVER" result "$id" --wait --timeout 20) || fail "result --wait"
expect_eq "$out" "ABC" "result of $id"
"$DROVER" status "$id" | grep -q "done" || fail "status of $id is not done"

out=$(printf 'from stdin' | "$DROVER" submit -q upper --wait --timeout 20) || fail "stdin submit"
expect_eq "$out" "FROM STDIN" "payload from stdin"

# map: results in input order, one per line
seq 1 300 | sed 's/^/line-/' > "$T/inputs"
"$DROVER" map -q upper < "$T/inputs" > "$T/mapped" || fail "map"
tr a-z A-Z < "$T/inputs" > "$T/expected"
cmp -s "$T/mapped" "$T/expected" || fail "map output differs from the inputs uppercased"

# each line: one id per line, each a real job
printf 'a\nb\nc\n' | "$DROVER" submit -q upper --each-line --no-wait > "$T/ids" || fail "each-line"
expect_eq "$(wc -l < "$T/ids")" "3" "ids printed by --each-line"
mapfile -t ids < "$T/ids"
expect_eq "$("$DROVER" result "${ids[1]}" --wait --timeout 20)" "B" "second each-line job"

# a 1 MiB payload goes through and back intact
head -c 1048576 /dev/urandom | base64 -w 0 > "$T/big"
"$DROVER" submit -q upper --wait --timeout 30 < "$T/big" > "$T/big.out" || fail "big payload"
expect_eq "$(tr a-z A-Z < "$T/big" | md5sum)" "$(md5sum < "$T/big.out")" "big payload result"

# cancel a delayed job; its status says cancelled; result is a failure
id=$("$DROVER" submit -q upper --data later --delay 60) || fail "delayed submit"
"$DROVER" status "$id" | grep -q "scheduled" || fail "delayed job is not scheduled"
"$DROVER" cancel "$id" || fail "cancel"
"$DROVER" status "$id" | grep -q "cancelled" || fail "cancelled job status"
expect_code 1 "$DROVER" result "$id"

# unknown id: a clear failure, not a hang
expect_code 1 "$DROVER" status 0123456789abcdef0123456789abcdef --timeout 5 >/dev/null
expect_code 2 "$DROVER" status not-an-id

# stats know the queue
"$DROVER" stats | grep -q "upper" || fail "stats do not list the queue"
pass "job path"
