#!/usr/bin/env bash
# Against a real droverd (CURVE, loopback, OS-chosen ports) and a real
# drover-worker: `drover workers` lists the worker with its key, queues,
# credit and jobs in flight; `drover stats --json` is one JSON object with
# every counter; `drover status` names the submitting key; SIGHUP makes
# droverd reread its allow-list and keep serving.
. "$(dirname "$0")/../integration/lib.sh"

make_keys
start_broker --durability none --metrics tcp://127.0.0.1:0
public_key () {
    sed -n 's/^ *public-key = "\(.*\)"$/\1/p' "$1"
}
WORKER_KEY=$(public_key "$T/keys/worker")
PRODUCER_KEY=$(public_key "$T/keys/producer")
[ ${#WORKER_KEY} -eq 40 ] || fail "cannot read the worker's public key"

# Nobody yet: the header alone.
"$DROVER" workers > "$T/out" || fail "drover workers with no worker"
expect_eq "$(wc -l < "$T/out")" 1 "lines with no worker"
head -1 "$T/out" | grep -Eq '^NAME +KEY +QUEUES +CREDIT +INFLIGHT +CONNECTED +IDLE$' \
    || fail "workers header: $(head -1 "$T/out")"

# One worker process serving two queues; each job holds until the test
# lets it go (so both stay in flight however slow the machine is).
start_workers worker "slow,other" 0 --name opsworker --concurrency 2 --prefetch 1 \
    --exec "while [ ! -e '$T/release' ]; do sleep 0.05; done; cat"
listed () {
    "$DROVER" workers > "$T/out" 2>"$T/err" && grep -q '^opsworker ' "$T/out"
}
wait_for 15 listed || fail "worker never listed: $(cat "$T/out" "$T/err")"
row=$(grep '^opsworker ' "$T/out")
read -r name key queues credit inflight since idle <<<"$row"
expect_eq "$key" "${WORKER_KEY:0:8}" "short key"
expect_eq "$queues" "slow,other" "queues"
expect_eq "$credit" 3 "credit (concurrency 2 + prefetch 1)"
expect_eq "$inflight" 0 "in flight when idle"
[[ "$since" =~ ^20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9:]+Z$ ]] || fail "connected since: $since"
pass "idle worker listed: $row"

# Two jobs in hand: credit goes down, in flight up.
ID1=$("$DROVER" submit -q slow --data one) || fail "submit"
ID2=$("$DROVER" submit -q slow --data two) || fail "submit"
busy () {
    "$DROVER" workers --json > "$T/json" 2>"$T/err" \
        && grep -q '"inflight":2' "$T/json"
}
wait_for 10 busy || fail "worker never showed 2 jobs in flight: $(cat "$T/json" "$T/err")"
python3 - "$T/json" "$WORKER_KEY" <<'PY' || fail "workers --json: $(cat "$T/json")"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
assert len(rows) == 1, rows
w = rows[0]
assert w["name"] == "opsworker" and w["key"] == sys.argv[2], w
assert w["queues"] == ["slow", "other"] and w["inflight"] == 2 and w["credit"] == 1, w
assert w["role"] == "worker" and w["connected_ms"] > 0, w
PY
pass "busy worker: 2 in flight, credit 1"
touch "$T/release"

"$DROVER" result --wait --timeout 20 "$ID1" "$ID2" > "$T/out" || fail "results"
"$DROVER" status "$ID1" > "$T/out" || fail "status"
grep -qF " submitter=$PRODUCER_KEY" "$T/out" || fail "status lacks the submitting key: $(cat "$T/out")"
pass "status names the submitting key"

"$DROVER" stats --json > "$T/stats" || fail "stats --json"
python3 - "$T/stats" <<'PY' || fail "stats --json: $(cat "$T/stats")"
import json, sys
s = json.load(open(sys.argv[1]))
for k in ("uptime_ms", "workers", "clients", "jobs_stored", "queues"):
    assert k in s, k
assert s["workers"] == 1, s
q = {x["name"]: x for x in s["queues"]}["slow"]
for k in ("queued", "scheduled", "running", "submitted", "done", "failed", "retried",
          "dead", "workers", "paused", "submit_rate", "done_rate"):
    assert k in q, k
assert q["submitted"] == 2 and q["done"] == 2 and q["workers"] == 1 and q["paused"] is False, q
PY
"$DROVER" stats > "$T/out" || fail "stats"
grep -Eq '^QUEUE +SUBMITTED +RETRIED +DEAD +PAUSED +SUBMIT/S +DONE/S$' "$T/out" \
    || fail "stats has no second table: $(cat "$T/out")"
grep -Eq '^slow +2 +0 +0 +no ' "$T/out" || fail "stats row for slow: $(cat "$T/out")"
pass "stats: every counter, as a table and as JSON"

# --all: the clients too, for an admin key (the asker is one of them).
DROVER_CERT="$T/keys/admin_secret" "$DROVER" workers --all > "$T/out" 2>"$T/err" \
    || fail "workers --all as admin: $(cat "$T/err")"
grep -Eq '^CLIENT +KEY +ROLE +CONNECTED +IDLE$' "$T/out" || fail "no clients table: $(cat "$T/out")"
grep -Eq " admin +20[0-9-]+T" "$T/out" || fail "admin does not see itself among the clients: $(cat "$T/out")"
grep -q '^opsworker ' "$T/out" || fail "workers --all lost the worker: $(cat "$T/out")"
DROVER_CERT="$T/keys/admin_secret" "$DROVER" workers --all --json > "$T/json" \
    || fail "workers --all --json"
grep -q '"kind":"client"' "$T/json" && grep -q '"kind":"worker"' "$T/json" \
    || fail "workers --all --json: $(cat "$T/json")"
"$DROVER" workers --all > "$T/out" || fail "workers --all as producer"
expect_eq "$(sed -n '/^CLIENT /,$p' "$T/out" | wc -l)" 1 "clients a producer key sees"
pass "workers --all lists clients to an admin key only"

# The broker's own HTTP endpoint, when this droverd has one (it logs it).
if wait_for 3 grep -q "serving metrics and health on" "$T/broker.log"; then
    http=$(sed -nE 's/.*serving metrics and health on tcp:\/\/([^ ]+) \(HTTP\).*/\1/p' "$T/broker.log" | tail -n 1)
    [[ "$http" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "HTTP endpoint line: $(grep 'metrics and health' "$T/broker.log")"
    "$DROVER" health --url "http://$http/readyz" > "$T/out" 2>"$T/err" \
        || fail "drover health on a serving broker: $(cat "$T/err")"
    DROVER_HEALTH_URL="http://$http/healthz" "$DROVER" health > "$T/out" 2>"$T/err" \
        || fail "drover health /healthz: $(cat "$T/err")"
    "$DROVER" health --url "http://$http/no-such-page" > "$T/out" 2>"$T/err" \
        && fail "drover health on a missing page succeeded"
    grep -q "HTTP 4" "$T/err" || fail "missing page: $(cat "$T/err")"
    pass "drover health against droverd's own /readyz and /healthz ($http)"
else
    echo "ok - workers: # this droverd serves no HTTP endpoint yet: health checked against the stand-in only"
fi

# SIGHUP: reread the allow-list, keep serving.
kill -HUP "$BROKER_PID"
wait_for 5 grep -q "SIGHUP" "$T/broker.log" || fail "no SIGHUP line in the broker log"
kill -0 "$BROKER_PID" || fail "droverd died on SIGHUP"
"$DROVER" stats > /dev/null || fail "stats after SIGHUP"
pass "SIGHUP rereads the allow-list; the broker keeps serving"
