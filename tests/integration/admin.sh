#!/usr/bin/env bash
# Job features through the CLI against a real broker: priorities, --at,
# progress, pause/resume, the dead-letter list (list, retry, purge), the
# queues table, and the admin role they need.
. "$(dirname "$0")/lib.sh"

make_keys
start_broker --heartbeat 200 --backoff 50
ADMIN="$T/keys/admin_secret"

# Pause: jobs are accepted but wait; the queues table says so
DROVER_CERT=$ADMIN "$DROVER" pause prio || fail "pause"
"$DROVER" pause prio 2>"$T/deny.err"
expect_eq "$?" "3" "pause with a producer key"
grep -qi "admin\|denied" "$T/deny.err" || fail "no clear refusal: $(cat "$T/deny.err")"
low=$("$DROVER" submit -q prio --data low --priority 0) || fail "submit low"
high=$("$DROVER" submit -q prio --data high --priority 9) || fail "submit high"
"$DROVER" queues > "$T/queues" || fail "queues"
grep -E "^prio[[:space:]]" "$T/queues" | grep -q "yes" || fail "queue not shown paused: $(cat "$T/queues")"

# One worker process taking one job at a time: the high-priority job,
# submitted last, must run first once the queue resumes
start_workers order prio 1 --exec 'cat; echo " $(date +%s%N)"' --prefetch 0
sleep 0.5
expect_eq "$("$DROVER" status "$high" | grep -c queued)" "1" "paused queue dispatched a job"
DROVER_CERT=$ADMIN "$DROVER" resume prio || fail "resume"
r_high=$("$DROVER" result "$high" --wait --timeout 20) || fail "high result"
r_low=$("$DROVER" result "$low" --wait --timeout 20) || fail "low result"
[ "${r_high##* }" -le "${r_low##* }" ] || fail "priority 9 ran after priority 0"

# --at: a job for a few seconds from now is scheduled, then runs (time
# enough for the status check on a slow machine)
at=$(( $(date +%s) + 5 ))
id=$("$DROVER" submit -q prio --data later --at "$at") || fail "submit --at"
"$DROVER" status "$id" | grep -q scheduled || fail "--at job not scheduled"
"$DROVER" result "$id" --wait --timeout 20 | grep -q "^later" || fail "--at job did not run"
expect_code 2 "$DROVER" submit -q prio --data x --at "not a time"

# Progress reported by a plugin handler is visible while it runs
if [ -n "$DROVER_PLUGIN" ]; then
    start_workers progress slowprog 1 --plugin "$DROVER_PLUGIN:progress"
    id=$("$DROVER" submit -q slowprog --data x) || fail "submit progress job"
    wait_for 10 sh -c "'$DROVER' status $id | grep -q 'progress=[1-9]'" \
        || fail "no progress shown: $("$DROVER" status "$id")"
    "$DROVER" result "$id" --wait --timeout 20 >/dev/null || fail "progress job"
fi

# Dead letters: permanent failures land there, keep their input, can be
# retried (with a fixed handler) or purged
start_workers failing doomed 1 --exec 'cat >/dev/null; echo broken >&2; exit 1'
d1=$("$DROVER" submit -q doomed --data first --attempts 2) || fail "submit d1"
d2=$("$DROVER" submit -q doomed --data second --attempts 1) || fail "submit d2"
expect_code 1 "$DROVER" result "$d1" --wait --timeout 20
expect_code 1 "$DROVER" result "$d2" --wait --timeout 20
DROVER_CERT=$ADMIN "$DROVER" dead list doomed > "$T/dead" || fail "dead list"
grep -q "$d1" "$T/dead" && grep -q "$d2" "$T/dead" || fail "dead list: $(cat "$T/dead")"
grep -q "broken" "$T/dead" || fail "dead list lacks the error"
expect_code 3 "$DROVER" dead list doomed
kill -TERM "$LAST_WORKER_PID"; wait "$LAST_WORKER_PID"
start_workers fixed doomed 1 --exec 'cat'
DROVER_CERT=$ADMIN "$DROVER" dead retry doomed "$d1" || fail "dead retry"
expect_eq "$("$DROVER" result "$d1" --wait --timeout 20)" "first" "retried dead job"
DROVER_CERT=$ADMIN "$DROVER" dead purge doomed || fail "dead purge"
"$DROVER" status "$d2" | grep -q unknown || fail "purged job still known: $("$DROVER" status "$d2")"
DROVER_CERT=$ADMIN "$DROVER" dead list doomed > "$T/dead2" || fail "dead list after purge"
[ ! -s "$T/dead2" ] || grep -qv "$d2" "$T/dead2" || fail "dead list not empty: $(cat "$T/dead2")"
pass "admin and job features"
