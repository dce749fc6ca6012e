#!/usr/bin/env bash
# Cluster-wide sync through the CLI, over CURVE: drover lock never lets two
# processes into the critical section, a SIGKILLed holder's lock is freed
# within the lease (its session's heartbeats), timeouts end with exit 1,
# events wake every waiter, barriers release all parties together.
. "$(dirname "$0")/lib.sh"

make_keys
start_broker --heartbeat 200

# 8 processes x 5 entries into a critical section that notices overlap
cat > "$T/critical.sh" <<'CRIT'
#!/bin/sh
if ! mkdir "$1/inside" 2>/dev/null; then echo OVERLAP >> "$1/log"; exit 0; fi
echo "enter $DROVER_LOCK_FENCE" >> "$1/log"
sleep 0.02
rmdir "$1/inside"
CRIT
chmod +x "$T/critical.sh"
pids=()
for p in $(seq 8); do
    ( for i in $(seq 5); do
          "$DROVER" lock crit --timeout 30 -- "$T/critical.sh" "$T" || echo "FAILED $?" >> "$T/log"
      done ) &
    pids+=("$!")
done
PIDS+=("${pids[@]}")
for pid in "${pids[@]}"; do wait "$pid"; done
grep -q OVERLAP "$T/log" && fail "two processes were inside at once"
grep -q FAILED "$T/log" && fail "a lock run failed: $(grep FAILED "$T/log" | head -3)"
expect_eq "$(grep -c '^enter' "$T/log")" "40" "entries into the critical section"
# fencing tokens only grow
awk '/^enter/ {print $2}' "$T/log" | sort -n -c || fail "fencing tokens went backwards"

# the command's exit status is drover lock's
expect_code 7 "$DROVER" lock crit -- sh -c 'exit 7'

# a SIGKILLed holder: its lock is free again within the lease
"$DROVER" lock held -- sh -c "touch '$T/holding'; exec sleep 60" &
holder=$!
PIDS+=("$holder")
wait_for 10 test -f "$T/holding" || fail "the holder never got the lock"
"$DROVER" lock held --timeout 0.3 -- true 2>"$T/busy.err"
expect_eq "$?" "1" "lock held by another"
grep -qi "lock" "$T/busy.err" || fail "no clear message: $(cat "$T/busy.err")"
start=$(date +%s%N)
pkill -KILL -P "$holder"; kill -KILL "$holder"
"$DROVER" lock held --timeout 10 -- true || fail "lock not freed after its holder died"
took=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$took" -lt 8000 ] || fail "lock freed only after $took ms"

# events: every waiter wakes; a cleared event times out
waiters=()
for w in 1 2 3; do
    "$DROVER" event wait go --timeout 20 > /dev/null 2>&1 &
    waiters+=("$!")
done
PIDS+=("${waiters[@]}")
sleep 0.5
"$DROVER" event set go || fail "event set"
for pid in "${waiters[@]}"; do wait "$pid" || fail "an event waiter did not wake"; done
"$DROVER" event clear go || fail "event clear"
expect_code 1 "$DROVER" event wait go --timeout 0.5

# barriers: three parties go together; two alone time out
parties=()
for b in 1 2 3; do
    "$DROVER" barrier meet --parties 3 --timeout 20 > /dev/null 2>&1 &
    parties+=("$!")
done
PIDS+=("${parties[@]}")
for pid in "${parties[@]}"; do wait "$pid" || fail "a barrier party was not released"; done
"$DROVER" barrier lonely --parties 2 --timeout 0.5 2>/dev/null
expect_eq "$?" "1" "barrier short of parties"
expect_code 2 "$DROVER" barrier meet --parties 0
pass "locks ($took ms to free a dead holder's lock), events, barriers"
