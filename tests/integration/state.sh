#!/usr/bin/env bash
# Shared state through the CLI over CURVE: set/get/del/list/incr, a watch
# that sees every change in order, limits and missing keys, and state
# surviving a broker restart (journal).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_restart.sh"

make_keys
start_broker --max-value 2048

# A watcher first: it must print every change below, in order
"$DROVER" state watch cfg > "$T/watch.out" 2>"$T/watch.err" &
watch_pid=$!
PIDS+=("$watch_pid")
# It follows once it prints a change (its first snapshot prints nothing):
# warm it up with a key of its own, gone again before the checked changes
warmed () {
    "$DROVER" state set cfg warm 1 >/dev/null && grep -q "^[0-9]* warm " "$T/watch.out"
}
wait_for 20 warmed || fail "the watcher never followed: $(cat "$T/watch.err")"
"$DROVER" state del cfg warm || fail "del warm"
wait_for 10 grep -q "^[0-9]* warm .*(deleted)" "$T/watch.out" || fail "watcher missed the warm-up delete"
warm_lines=$(wc -l < "$T/watch.out")
base=$(tail -n 1 "$T/watch.out" | cut -d ' ' -f 1)

"$DROVER" state set cfg colour blue || fail "set"
expect_eq "$("$DROVER" state get cfg colour)" "blue" "get after set"
"$DROVER" state set cfg colour green || fail "set again"
printf 'from stdin' | "$DROVER" state set cfg note - || fail "set from stdin"
expect_eq "$("$DROVER" state get cfg note)" "from stdin" "value from stdin"
expect_eq "$("$DROVER" state incr cfg hits)" "1" "first incr"
expect_eq "$("$DROVER" state incr cfg hits 41)" "42" "incr by 41"
expect_eq "$("$DROVER" state incr cfg hits -- -2)" "40" "negative incr"
"$DROVER" state del cfg note || fail "del"
expect_code 1 "$DROVER" state get cfg note
expect_code 1 "$DROVER" state del cfg note
expect_code 1 "$DROVER" state get nosuchns key

# list: keys in order with versions
"$DROVER" state list cfg > "$T/list" || fail "list"
expect_eq "$(cut -d' ' -f1 "$T/list" | tr '\n' ' ')" "colour hits " "listed keys"
grep -q "^colour 2 green$" "$T/list" || fail "list line: $(cat "$T/list")"
"$DROVER" state list cfg co > "$T/list2" || fail "list prefix"
expect_eq "$(wc -l < "$T/list2")" "1" "prefix list"

# limits: a value over --max-value, a key over 1 KiB, a bad namespace
head -c 4000 /dev/zero | tr '\0' x > "$T/big"
"$DROVER" state set cfg big - < "$T/big" 2>"$T/big.err"
expect_eq "$?" "1" "oversized value"
[ -s "$T/big.err" ] || fail "no message for an oversized value"
expect_code 2 "$DROVER" state set cfg "$(head -c 1100 /dev/zero | tr '\0' k)" v
expect_code 2 "$DROVER" state get 'bad ns!' key

# the watcher saw the seven changes in order, with increasing sequence numbers
wait_for 10 sh -c "[ \$(wc -l < '$T/watch.out') -ge $((warm_lines + 7)) ]" \
    || fail "watch saw: $(cat "$T/watch.out")"
tail -n +$((warm_lines + 1)) "$T/watch.out" > "$T/watched"
awk '{print $1}' "$T/watched" | head -7 | tr '\n' ' ' > "$T/seqs"
expect_eq "$(cat "$T/seqs")" "$(seq $((base + 1)) $((base + 7)) | tr '\n' ' ')" "watch sequence numbers"
grep -q "^$((base + 2)) colour 2 green$" "$T/watched" || fail "watch line: $(cat "$T/watched")"
grep -q "^$((base + 6)) hits 3 40$" "$T/watched" || fail "watch line: $(cat "$T/watched")"
grep -q "^$((base + 7)) note .*(deleted)" "$T/watched" || fail "watch did not show the delete: $(cat "$T/watched")"

# a producer key may use state; a worker key may not
DROVER_CERT="$T/keys/worker_secret" "$DROVER" state get cfg colour 2>/dev/null
expect_eq "$?" "3" "worker key reading state"

# state survives a broker crash (journal), and sequence numbers go on
stop_broker KILL
restart_broker broker2 --max-value 2048
expect_eq "$("$DROVER" state get cfg colour)" "green" "value after restart"
expect_eq "$("$DROVER" state incr cfg hits)" "41" "counter after restart"
pass "shared state"
