#!/usr/bin/env bash
# The broker's HTTP endpoint against a real droverd: /healthz, /readyz, a
# 404, and /metrics agreeing with what was done to the broker (jobs
# submitted, run, failed; queue depth; wait and run histograms; journal,
# shared state, state subscribers, refused handshakes). The page must be
# valid Prometheus text throughout.
. "$(dirname "$0")/lib.sh"

make_keys
start_broker --heartbeat 200 --backoff 10 --metrics tcp://127.0.0.1:0
HTTP=$(grep -o "metrics and health on tcp://[0-9.]*:[0-9]*" "$T/broker.log" | tail -n 1 \
       | sed 's/.*tcp:\/\///')
[ -n "$HTTP" ] || fail "no metrics endpoint in the broker log"
HOST=${HTTP%:*}
PORT=${HTTP##*:}

# http_get PATH: response (status line, headers, body) in $T/http; no curl
# needed, bash's /dev/tcp does
http_get () {
    exec 3<>"/dev/tcp/$HOST/$PORT" || fail "cannot connect to $HTTP"
    printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" "$HTTP" >&3
    timeout 5 cat <&3 | tr -d '\r' > "$T/http"
    exec 3<&-
}
status_of () { head -n 1 "$T/http" | awk '{print $2}'; }
body_of () { sed '1,/^$/d' "$T/http"; }

# metric NAME [LABELS]: the value of one series ("" when absent)
metric () {
    local series=$1
    [ -n "${2:-}" ] && series="$1{$2}"
    http_get /metrics
    body_of | awk -v s="$series" '$1 == s { print $2; exit }'
}

# wait_metric SECONDS EXPECTED NAME [LABELS]
wait_metric () {
    local seconds=$1 expected=$2
    shift 2
    local deadline=$(( $(date +%s) + seconds )) value
    while :; do
        value=$(metric "$@")
        [ "$value" = "$expected" ] && return 0
        [ "$(date +%s)" -ge "$deadline" ] && fail "$* is '$value', expected $expected"
        sleep 0.1
    done
}

check_page () {
    http_get /metrics
    [ "$(status_of)" = 200 ] || fail "/metrics status $(status_of)"
    grep -qi '^content-type: text/plain; version=0.0.4' "$T/http" || fail "/metrics content type"
    body_of > "$T/page"
    # Every line: a comment, or a series and a number
    if grep -Ev '^(# (HELP|TYPE) [a-z_]+ .*|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+]+|NaN|[+-]Inf))$' \
            "$T/page" | grep -q .; then
        fail "not Prometheus text: $(grep -Ev '^(# |[a-z_])' "$T/page" | head -n 3)"
    fi
}

http_get /healthz
[ "$(status_of)" = 200 ] && body_of | grep -qx ok || fail "/healthz: $(cat "$T/http")"
http_get /readyz
[ "$(status_of)" = 200 ] && body_of | grep -qx ready || fail "/readyz: $(cat "$T/http")"
http_get /nothing-here
[ "$(status_of)" = 404 ] || fail "unknown path answered $(status_of)"
check_page
expect_eq "$(metric drover_workers_connected)" "0" "workers before any"

# Twenty jobs and no worker: all of them wait
for i in $(seq 1 20); do
    "$DROVER" submit -q m --data "job $i" >> "$T/ids" || fail "submit $i"
done
expect_eq "$(metric drover_queue_depth 'queue="m"')" "20" "depth with no worker"
expect_eq "$(metric drover_jobs_submitted_total 'queue="m"')" "20" "submitted"

# A worker runs them all: depth 0, 20 completed, 20 waits and runs observed
start_workers w m 1 --exec 'cat'
while read -r id; do
    "$DROVER" result "$id" --wait --timeout 20 > /dev/null || fail "result $id"
done < "$T/ids"
wait_metric 5 20 drover_jobs_completed_total 'queue="m"'
expect_eq "$(metric drover_queue_depth 'queue="m"')" "0" "depth after the run"
expect_eq "$(metric drover_job_wait_seconds_count 'queue="m"')" "20" "wait observations"
expect_eq "$(metric drover_job_run_seconds_count 'queue="m"')" "20" "run observations"
expect_eq "$(metric drover_job_run_seconds_bucket 'queue="m",le="+Inf"')" "20" "run +Inf bucket"
expect_eq "$(metric drover_workers_connected)" "1" "workers connected"
expect_eq "$(metric drover_queue_workers 'queue="m"')" "1" "workers of queue m"

# A job that fails for good is counted and held in the dead letters
start_workers f doomed 1 --exec 'exit 3'
"$DROVER" submit -q doomed --data x --attempts 2 > "$T/doomed" || fail "submit doomed"
"$DROVER" result "$(cat "$T/doomed")" --wait --timeout 20 > /dev/null 2>&1
wait_metric 5 1 drover_jobs_failed_total 'queue="doomed"'
expect_eq "$(metric drover_jobs_retried_total 'queue="doomed"')" "1" "retried"
expect_eq "$(metric drover_queue_dead 'queue="doomed"')" "1" "dead letters"

# The journal: bytes on disk, commits and fsyncs observed
[ "$(metric drover_journal_bytes)" -gt 0 ] || fail "journal bytes"
[ "$(metric drover_journal_commits_total)" -gt 0 ] || fail "journal commits"
[ "$(metric drover_journal_fsync_seconds_count)" -gt 0 ] || fail "fsync histogram empty"

# Shared state, and a subscriber on the PUB socket while a watch runs
"$DROVER" state set metrics.ns k1 v1 || fail "state set"
"$DROVER" state set metrics.ns k2 v2 || fail "state set"
expect_eq "$(metric drover_state_keys)" "2" "state keys"
expect_eq "$(metric drover_state_namespaces)" "1" "state namespaces"
"$DROVER" state watch metrics.ns > "$T/watch.out" 2>&1 &
WATCH_PID=$!
PIDS+=("$WATCH_PID")
wait_metric 10 1 drover_state_subscribers
kill "$WATCH_PID"
wait "$WATCH_PID" 2>/dev/null
wait_metric 10 0 drover_state_subscribers

# A key the broker does not know is refused and counted
"$DROVER" keygen "$T/keys/stranger" > /dev/null || fail "keygen stranger"
before=$(metric drover_auth_refused_total)
DROVER_CERT="$T/keys/stranger_secret" timeout 10 "$DROVER" stats > /dev/null 2>&1 &&
    fail "a key outside the allow-list was served"
after=$(metric drover_auth_refused_total)
[ "$after" -gt "$before" ] || fail "refused handshakes not counted ($before -> $after)"

# Slow or broken HTTP clients do not stop the endpoint
exec 4<>"/dev/tcp/$HOST/$PORT"
printf 'GET /metr' >&4                          # half a request, left open
printf 'not http at all\r\n\r\n' > "/dev/tcp/$HOST/$PORT"
http_get /healthz
[ "$(status_of)" = 200 ] || fail "/healthz behind a half-sent request"
exec 4<&-
check_page
pass "metrics"
