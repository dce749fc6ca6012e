#!/usr/bin/env bash
# Crashes: the broker is killed with SIGKILL three times while a producer
# submits 3000 jobs and workers run them, and restarted on the same data
# directory. Every job whose id the producer printed completes exactly
# once from the producer's point of view, with its own input as result,
# and nothing runs that was never accepted. Clients and workers that start
# while the broker dies connect to its successor. Then worker processes
# are killed with SIGKILL again and again during a map: every job
# completes. Jobs that ran more than once are counted and reported.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_restart.sh"

make_keys
began=$SECONDS
start_broker --heartbeat 200

# ids_printed: how many ids the producer has printed so far
ids_printed () {
    wc -l < "$T/ids"
}

# printed_more_than N: true once the producer has printed more than N ids
printed_more_than () {
    [ "$(ids_printed)" -gt "$1" ]
}

# Workers that log each run ("ID PAYLOAD") and echo the payload
runs="$T/runs.txt"
start_workers crash-w crash 2 \
    --exec "p=\$(cat); echo \"\$DROVER_JOB_ID \$p\" >> $runs; printf %s \"\$p\""

# The producer: 3000 lines, fed at about 700 a second so the kills land
# while it submits; the last 100 wait until the third restart, so the
# producer is still at work then however slow the restarts are.
# --each-line prints ids in input order once accepted.
seq 1 3000 | sed 's/^/job-/' > "$T/inputs"
{
    head -n 2900 "$T/inputs" | awk '{ print; fflush () } NR % 100 == 0 { system ("sleep 0.15") }'
    until [ -e "$T/fed" ]; do sleep 0.1; done
    tail -n 100 "$T/inputs"
} | "$DROVER" submit -q crash --each-line --no-wait > "$T/ids" 2> "$T/producer.err" &
producer=$!
PIDS+=("$producer")

kills=()
last=0
for round in 1 2 3; do
    # Once the producer has made progress since the last restart, kill
    wait_for 20 printed_more_than $((last + 50)) \
        || fail "producer stuck at $(ids_printed) ids before kill $round: $(cat "$T/producer.err")"
    sleep 0.3
    last=$(ids_printed)
    kills+=("$last")
    stop_broker KILL
    restart_broker "broker-r$round" --heartbeat 200
    grep -q "journal replayed" "$T/broker-r$round.log" || fail "restart $round did not replay"
done
kill -0 "$producer" 2>/dev/null || fail "the producer ended before the last kill"
touch "$T/fed"

# Bounded wait for the producer
end=$((SECONDS + 60))
while kill -0 "$producer" 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "producer still running after 60 s ($(ids_printed) ids)"
    sleep 0.1
done
wait "$producer" || fail "producer exited $?: $(cat "$T/producer.err")"

# Each line accepted exactly once: one id per input line, no id twice
expect_eq "$(ids_printed)" "3000" "ids printed for 3000 lines"
expect_eq "$(sort "$T/ids" | uniq -d | wc -l)" "0" "ids printed twice"
grep -qvE '^[0-9a-f]{32}$' "$T/ids" && fail "the producer printed something that is no id"

# Every id has a result, and it is its own line
mapfile -t ids < "$T/ids"
"$DROVER" result "${ids[@]}" --wait --timeout 60 > "$T/results" 2> "$T/results.err" \
    || fail "results: $(head -n 3 "$T/results.err")"
cmp -s "$T/inputs" "$T/results" \
    || fail "results differ from the inputs: $(diff "$T/inputs" "$T/results" | head -n 5)"

# Nothing ran that was never accepted, and every run had its id's payload
paste -d ' ' "$T/ids" "$T/inputs" | sort > "$T/accepted"
sort -u "$runs" > "$T/ran"
expect_eq "$(comm -13 "$T/accepted" "$T/ran" | wc -l)" "0" \
    "runs of ids never accepted (or with another payload)"
expect_eq "$(cut -d ' ' -f 1 "$T/ran" | wc -l)" "3000" "jobs that ran"
twice=$(cut -d ' ' -f 1 "$runs" | sort | uniq -d | wc -l)
runs_total=$(wc -l < "$runs")
pass "broker SIGKILLed 3 times (after ${kills[*]} ids) during 3000 submits: 3000 ids," \
     "all results right, $twice jobs ran more than once ($runs_total runs)"

# Clients and workers that start while the broker dies: a connection
# broken during the handshake, or a Hello lost with the dead broker, is
# retried on its successor, never taken for "not authorised" or
# "cannot reach". 20 clients and 4 workers per crash, 3 crashes.
refused=0
starters=()
for round in 1 2 3; do
    clients=()
    for i in $(seq 1 20); do
        "$DROVER" stats --timeout 10 --connect-timeout 20 >/dev/null 2>"$T/client-$round-$i.err" &
        clients+=("$!")
        PIDS+=("$!")
    done
    for i in 1 2 3 4; do
        "$DROVER_WORKER" --broker "$WORKERS" --server-key "$T/keys/server" \
            --cert "$T/keys/worker_secret" --queue starting --processes 0 \
            --name "starter-$round-$i" --connect-timeout 20 --exec cat >"$T/starter-$round-$i.log" 2>&1 &
        starters+=("$!")
        PIDS+=("$!")
    done
    sleep "0.0$((round * 3 - 1))"
    stop_broker KILL
    restart_broker "broker-c$round" --heartbeat 200
    for pid in "${clients[@]}"; do
        wait "$pid" || refused=$((refused + 1))
    done
    for i in 1 2 3 4; do
        wait_for 10 grep -q "worker starter-$round-$i joined" "$T/broker-c$round.log" \
            || fail "worker starter-$round-$i, started during a crash, did not join:" \
                    "$(grep -m1 error "$T/starter-$round-$i.log")"
    done
done
[ "$refused" -eq 0 ] || fail "$refused of 60 clients failed across a broker crash:" \
    "$(cat "$T"/client-*.err | grep -v '^drover:' | sed 's/^[^ ]* //' | sort | uniq -c | head -n 3)"
kill -TERM "${starters[@]}"
wait "${starters[@]}" 2>/dev/null
pass "60 clients and 12 workers started during 3 more broker crashes all connected"

# Worker processes killed again and again: 2 supervisors, a slow handler,
# one supervisor's children killed every 0.5 s; the supervisor restarts them
runs2="$T/runs2.txt"
slow="p=\$(cat); echo \"\$DROVER_JOB_ID \$p\" >> $runs2; sleep 0.05; printf %s \"\$p\""
start_workers slow-a slow 2 --exec "$slow"
victim=$LAST_WORKER_PID
start_workers slow-b slow 2 --exec "$slow"
seq 1 300 | sed 's/^/line-/' > "$T/inputs2"
"$DROVER" map -q slow --attempts 10 --timeout 60 < "$T/inputs2" > "$T/mapped" 2> "$T/map.err" &
mapper=$!
PIDS+=("$mapper")
# Kill only once jobs are running, so that killed workers hold some
runs2_lines () {
    [ -f "$runs2" ] && [ "$(wc -l < "$runs2")" -ge 20 ]
}
wait_for 30 runs2_lines || fail "the map never got going: $(head -n 3 "$T/map.err")"
killed=0
for round in 1 2 3 4 5; do
    sleep 0.5
    kill -0 "$mapper" 2>/dev/null || break
    children=$(pgrep -P "$victim" | wc -l)
    pkill -KILL -P "$victim" && killed=$((killed + children))
done
[ "$killed" -gt 0 ] || fail "no worker process was killed (the map ended too soon)"
[ "$(grep -c "started worker" "$T/slow-a.log")" -gt 2 ] \
    || fail "the supervisor did not restart its killed workers"
wait "$mapper" || fail "map failed while workers were killed: $(head -n 3 "$T/map.err")"
cmp -s "$T/inputs2" "$T/mapped" || fail "map results differ after workers were killed"
grep -q "requeueing [1-9]" "$T/broker-c3.log" \
    || fail "broker did not requeue the killed workers' jobs"
twice2=$(cut -d ' ' -f 1 "$runs2" | sort | uniq -d | wc -l)
pass "$killed worker processes SIGKILLed during a 300-job map: all results right," \
     "$twice2 jobs ran more than once; $((SECONDS - began)) s in all"
