#!/usr/bin/env bash
# Durability: a broker killed with SIGKILL comes back from its journal with
# every job as it was (done with its result, queued, scheduled); a torn
# tail is cut with a log line and costs at most its last record; a flipped
# byte in the middle stops start-up with the file and offset named; with
# --durability none nothing survives.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_restart.sh"

make_keys

# states: "ID STATE" per line for the ids given (unknown ones included)
states () {
    "$DROVER" status "$@" 2>/dev/null | awk '{print $1, $2}'
}

# --durability none: in memory only, so a restart forgets every job
start_broker --durability none --heartbeat 200
printf 'm1\nm2\nm3\n' | "$DROVER" submit -q waiting --each-line --no-wait > "$T/mem-ids" \
    || fail "submit to an in-memory broker"
mapfile -t mem_ids < "$T/mem-ids"
expect_eq "${#mem_ids[@]}" "3" "ids from the in-memory broker"
expect_eq "$(states "${mem_ids[@]}" | grep -c ' queued$')" "3" "queued in memory"
stop_broker KILL
restart_broker mem2 --durability none --heartbeat 200
expect_code 1 "$DROVER" status "${mem_ids[@]}" > "$T/mem-status" 2>/dev/null
expect_eq "$(grep -c ' unknown$' "$T/mem-status")" "3" "jobs after an in-memory restart"
[ ! -e "$T/data/journal" ] || fail "--durability none wrote a journal"
stop_broker TERM

# Durable (the default): 5 done, 1 failed, 10 queued, 5 scheduled, and
# 1 done whose result expires while the broker is down
start_broker --heartbeat 200
start_workers done done 1 --plugin "$DROVER_PLUGIN:upper"
done_worker=$LAST_WORKER_PID
start_workers fatal fatal 1 --plugin "$DROVER_PLUGIN:fatal"
fatal_worker=$LAST_WORKER_PID
seq 1 5 | sed 's/^/done-/' | "$DROVER" submit -q done --each-line --no-wait > "$T/done-ids" \
    || fail "submit to done"
mapfile -t done_ids < "$T/done-ids"
expect_eq "${#done_ids[@]}" "5" "ids for queue done"
"$DROVER" result "${done_ids[@]}" --wait --timeout 20 > "$T/done-results" || fail "results of done"
expect_eq "$(cat "$T/done-results")" "$(seq 1 5 | sed 's/^/DONE-/')" "results before the kill"
fatal_id=$("$DROVER" submit -q fatal --data boom) || fail "submit to fatal"
expect_code 1 "$DROVER" result "$fatal_id" --wait --timeout 20 2>/dev/null

seq 1 10 | sed 's/^/wait-/' > "$T/wait-inputs"
"$DROVER" submit -q waiting --each-line --no-wait < "$T/wait-inputs" > "$T/wait-ids" \
    || fail "submit to waiting"
mapfile -t wait_ids < "$T/wait-ids"
expect_eq "${#wait_ids[@]}" "10" "ids for queue waiting"
seq 1 5 | sed 's/^/later-/' | "$DROVER" submit -q later --delay 30 --each-line --no-wait \
    > "$T/later-ids" || fail "submit to later"
mapfile -t later_ids < "$T/later-ids"
expect_eq "${#later_ids[@]}" "5" "ids for queue later"
all_ids=("${done_ids[@]}" "$fatal_id" "${wait_ids[@]}" "${later_ids[@]}")

"$DROVER" status "${all_ids[@]}" > "$T/status-before" || fail "status before the kill"
expect_eq "$(grep -c ' done attempts=1 ' "$T/status-before")" "5" "done before the kill"
grep -Eq "^$fatal_id failed attempts=1 queue=fatal error=boom( submitter=[^ ]{40})?$" "$T/status-before" \
    || fail "failed job before the kill: $(grep "$fatal_id" "$T/status-before")"
expect_eq "$(grep -c ' queued attempts=0 queue=waiting' "$T/status-before")" "10" \
    "queued before the kill"
expect_eq "$(grep -c ' scheduled attempts=0 queue=later' "$T/status-before")" "5" \
    "scheduled before the kill"

# (kept 6 s: time for the workers to drain and the kill on a slow machine
# before it runs out)
ttl_id=$("$DROVER" submit -q done --data brief --ttl 6) || fail "submit with --ttl 6"
expect_eq "$("$DROVER" result "$ttl_id" --wait --timeout 20)" "BRIEF" "result kept 6 s"

# SIGKILL, restart on the same ports and data directory: all as it was,
# but for the result whose time to live ran out while the broker was down.
# The workers are stopped first so nothing changes while the broker is down.
kill -TERM "$done_worker" "$fatal_worker"
wait "$done_worker" "$fatal_worker" 2>/dev/null
stop_broker KILL
sleep 6.2
restart_broker broker2 --heartbeat 200
grep -q "journal replayed: 10 queued, 5 scheduled, 6 finished, 1 expired" "$T/broker2.log" \
    || fail "replay line: $(grep "journal replayed" "$T/broker2.log")"
expect_eq "$(states "$ttl_id")" "$ttl_id unknown" "expired result after the restart"
"$DROVER" status "${all_ids[@]}" > "$T/status-after" || fail "status after the restart"
diff "$T/status-before" "$T/status-after" >&2 || fail "statuses changed across the restart"
"$DROVER" result "${done_ids[@]}" > "$T/done-results2" || fail "results after the restart"
cmp -s "$T/done-results" "$T/done-results2" || fail "results changed across the restart"

# The queued jobs run once a worker comes
start_workers waiting waiting 2 --plugin "$DROVER_PLUGIN:upper"
wait_worker=$LAST_WORKER_PID
"$DROVER" result "${wait_ids[@]}" --wait --timeout 30 > "$T/wait-results" \
    || fail "waiting jobs after the restart"
expect_eq "$(cat "$T/wait-results")" "$(tr a-z A-Z < "$T/wait-inputs")" "waiting jobs' results"
kill -TERM "$wait_worker"
wait "$wait_worker" 2>/dev/null
expect_eq "$(states "${all_ids[@]}" | grep -c ' done$')" "15" "done before the torn write"

# Torn write: the newest segment loses its last 3 bytes. The broker cuts
# the torn record, says so, and everything else is intact: the last record
# is the end of one waiting job, which at worst is queued again.
stop_broker TERM
seg=$(ls "$T"/data/journal/journal-*.log | sort | tail -n 1)
[ -f "$seg" ] || fail "no journal segment in $T/data/journal"
size=$(stat -c %s "$seg")
truncate -s $((size - 3)) "$seg"
restart_broker broker3 --heartbeat 200
grep -q "torn write in $seg at offset [0-9]*" "$T/broker3.log" \
    || fail "no torn-write line naming $seg"
[ "$(stat -c %s "$seg")" -lt $((size - 3)) ] || fail "the torn record was not cut off"
states "${all_ids[@]}" > "$T/states3"
expect_eq "$(grep -c ' unknown$' "$T/states3")" "0" "jobs lost to a torn tail"
expect_eq "$(grep -c ' scheduled$' "$T/states3")" "5" "scheduled after the torn tail"
expect_eq "$(grep -c ' failed$' "$T/states3")" "1" "failed after the torn tail"
n_done=$(grep -c ' done$' "$T/states3")
[ "$n_done" -ge 14 ] || fail "only $n_done of 15 jobs still done after a torn tail"
expect_eq "$(grep -c ' queued$' "$T/states3")" "$((15 - n_done))" "queued again after a torn tail"
"$DROVER" result "${done_ids[@]}" > "$T/done-results3" || fail "results after the torn tail"
cmp -s "$T/done-results" "$T/done-results3" || fail "results changed by the torn tail"

# A flipped byte in the middle of the segment: start-up stops, naming the
# file and the offset of the damaged record, and cuts nothing. Twice: in
# the body of the record that holds the middle of the file (its checksum
# fails), and in that record's length (it then runs past the end of the
# file, like a torn write, though intact records follow it).
stop_broker TERM
size=$(stat -c %s "$seg")
cp "$seg" "$T/segment.good"
rec=16                                  # after the segment header
while :; do
    len=$(od -An -tu4 --endian=little -j "$rec" -N 4 "$seg" | tr -d ' ')
    [ $((rec + 8 + len)) -le $((size / 2)) ] || break
    rec=$((rec + 8 + len))
done
[ $((rec + 8 + len)) -lt "$size" ] || fail "the middle record is the last one"

# flip BYTE-OFFSET: xors one byte of the segment with 0x20, in place
flip () {
    local byte
    byte=$(od -An -tu1 -j "$1" -N 1 "$seg" | tr -d ' ')
    printf "\\$(printf %03o $((byte ^ 0x20)))" \
        | dd of="$seg" bs=1 seek="$1" conv=notrunc 2>/dev/null
    expect_eq "$(od -An -tu1 -j "$1" -N 1 "$seg" | tr -d ' ')" "$((byte ^ 0x20))" "flipped byte"
}

# refused WHAT LOG: droverd must exit non-zero at once, naming the segment
# and the record offset, and leave the segment as it was
refused () {
    broker_args --heartbeat 200
    local start=$SECONDS rc
    timeout 20 "$DROVERD" "${BROKER_ARGS[@]}" > "$T/$2.log" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] \
        || fail "$1: droverd exited $rc ($(grep -m1 -E 'torn|corrupt' "$T/$2.log"))"
    [ $((SECONDS - start)) -le 5 ] || fail "$1: droverd took $((SECONDS - start)) s to refuse"
    grep -q "serving clients" "$T/$2.log" && fail "$1: droverd served a corrupt journal"
    grep -q "$seg is corrupt at offset $rec:" "$T/$2.log" \
        || fail "$1: no error naming $seg and offset $rec: $(cat "$T/$2.log")"
    expect_eq "$(stat -c %s "$seg")" "$size" "$1: segment size after the refusal"
}

flip $((rec + 8 + len / 2))
refused "flipped body byte" broker4
cp "$T/segment.good" "$seg"
flip $((rec + 1))
refused "flipped length byte" broker5
cp "$T/segment.good" "$seg"
restart_broker broker6 --heartbeat 200
expect_eq "$(states "${all_ids[@]}" | grep -c ' unknown$')" "0" "jobs lost after repair"
pass "restart keeps 21 jobs, forgets 1 expired; torn tail cut, $n_done of 15 still" \
     "done; flips in the record at offset $rec of $size refused; in-memory forgets"
