#!/usr/bin/env bash
# The job commands end to end: `drover up` runs a broker and an --exec
# worker on 127.0.0.1 (ports the OS picks, keys in a temporary directory),
# and submit, map, result, status, cancel and stats talk to it through the
# environment that `up` prints.
#
# usage: cli_jobs.sh PATH_TO_DROVER [PATH_TO_DROVER_WORKER]
set -u
DROVER=${1:?usage: cli_jobs.sh PATH_TO_DROVER [PATH_TO_DROVER_WORKER]}
if [ -n "${2:-}" ]; then
    PATH="$(dirname "$2"):$PATH"    # where `up` looks last
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/drover-cli-jobs.XXXXXX")
UP_PID=
cleanup () {
    if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
        kill -TERM "$UP_PID"
        wait "$UP_PID"
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
failures=0
fail () {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# The handler: "fail..." fails, "sleep N" sleeps, anything else is
# upper-cased.
cat > "$TMP/handler.sh" <<'HANDLER'
#!/bin/sh
x=$(cat)
case "$x" in
    fail*) echo "refusing $x" >&2; exit 1 ;;
    sleep*) sleep "${x#sleep }"; printf 'slept' ;;
    *) printf '%s' "$x" | tr a-z A-Z ;;
esac
HANDLER
chmod +x "$TMP/handler.sh"

"$DROVER" up --queue cli --exec "$TMP/handler.sh" --processes 2 \
    --producers 'tcp://127.0.0.1:*' --workers 'tcp://127.0.0.1:*' \
    --keys "$TMP/keys" --data-dir "$TMP/data" >"$TMP/up.out" 2>"$TMP/up.err" &
UP_PID=$!
for _ in $(seq 100); do
    grep -q 'export DROVER_CERT=' "$TMP/up.out" && break
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q 'export DROVER_CERT=' "$TMP/up.out"; then
    echo "FAIL: drover up did not start" >&2
    cat "$TMP/up.out" "$TMP/up.err" >&2
    exit 1
fi
# Exactly what a user would paste.
eval "$(grep '^ *export DROVER_' "$TMP/up.out")"
grep -q "submit -q cli --wait" "$TMP/up.out" || fail "up prints no example submit command"

# run NAME CODE ARGS... : runs drover with stdin from $IN (default none)
run () {
    local want=$1
    shift
    "$DROVER" "$@" <"${IN:-/dev/null}" >"$TMP/out" 2>"$TMP/err"
    local got=$?
    if [ "$got" != "$want" ]; then
        fail "drover $* exited $got, wanted $want; stderr: $(tail -c 400 "$TMP/err")"
        return 1
    fi
}
is_id () {
    [[ "$1" =~ ^[0-9a-f]{32}$ ]]
}

# ---- submit ------------------------------------------------------------------
run 0 submit -q cli --data hello --wait
[ "$(cat "$TMP/out")" = HELLO ] || fail "submit --wait printed '$(cat "$TMP/out")'"
printf 'raw\nbytes' > "$TMP/in"
IN="$TMP/in" run 0 submit -q cli --wait
printf 'RAW\nBYTES' | cmp -s - "$TMP/out" || fail "submit --wait from stdin is not byte-exact"

run 0 submit -q cli --data later --priority 5 --attempts 2 --ttl 60 --job-timeout 30
ID=$(cat "$TMP/out")
is_id "$ID" || fail "submit printed '$ID', not an id"
run 0 result "$ID" --wait --timeout 20
[ "$(cat "$TMP/out")" = LATER ] || fail "result --wait printed '$(cat "$TMP/out")'"
run 0 status "$ID"
grep -Eq "^$ID done attempts=1 queue=cli submitter=[^ ]{40}$" "$TMP/out" || fail "status line: $(cat "$TMP/out")"

# A failing job: exit 1 and its error on stderr.
run 1 submit -q cli --data fail-one --attempts 1 --wait
grep -q 'refusing fail-one' "$TMP/err" || fail "failed job's error not shown: $(cat "$TMP/err")"
# Timing out while waiting: exit 1, soon, naming the job.
start=$(date +%s)
run 1 submit -q cli --data 'sleep 5' --wait --timeout 0.5
[ $(( $(date +%s) - start )) -le 4 ] || fail "--timeout 0.5 took $(( $(date +%s) - start )) s"
grep -q 'not finished' "$TMP/err" || fail "timeout message: $(cat "$TMP/err")"
SLEEPER=$(grep -Eo '[0-9a-f]{32}' "$TMP/err" | head -1)
# A job still running: result without --wait is "not finished".
run 1 result "$SLEEPER"
grep -q 'not finished' "$TMP/err" || fail "result of a running job: $(cat "$TMP/err")"

# ---- each-line and map ---------------------------------------------------------
seq 1 50 > "$TMP/lines"
IN="$TMP/lines" run 0 submit -q cli --each-line --no-wait
[ "$(wc -l < "$TMP/out")" = 50 ] || fail "--each-line printed $(wc -l < "$TMP/out") ids for 50 lines"
[ "$(grep -Ec '^[0-9a-f]{32}$' "$TMP/out")" = 50 ] || fail "--each-line printed something else than ids"
[ "$(sort -u "$TMP/out" | wc -l)" = 50 ] || fail "--each-line ids are not distinct"
# Their results, in input order.
run 0 result --wait --timeout 60 $(cat "$TMP/out")
seq 1 50 | cmp -s - "$TMP/out" || fail "results of --each-line jobs are not 1..50 in order"

printf 'a\nb\n\nc d\ne' > "$TMP/in"
IN="$TMP/in" run 0 map -q cli --timeout 60
printf 'A\nB\n\nC D\nE\n' | cmp -s - "$TMP/out" || fail "map output: $(od -c "$TMP/out" | head -5)"
printf 'x\nfail-two\ny\n' > "$TMP/in"
IN="$TMP/in" run 1 map -q cli --attempts 1 --timeout 60
printf 'X\nY\n' | cmp -s - "$TMP/out" || fail "map with a failure printed: $(cat "$TMP/out")"
grep -Eq 'job [0-9a-f]{32} \(line 2\) failed: .*refusing fail-two' "$TMP/err" \
    || fail "map does not name the failed job: $(cat "$TMP/err")"

# ---- cancel, stats, unknown ids --------------------------------------------------
run 0 submit -q cli --data later --delay 60
DELAYED=$(cat "$TMP/out")
run 0 status "$DELAYED"
grep -q "^$DELAYED scheduled " "$TMP/out" || fail "delayed job status: $(cat "$TMP/out")"
run 0 cancel "$DELAYED"
[ "$(cat "$TMP/out")" = "$DELAYED cancelled" ] || fail "cancel printed '$(cat "$TMP/out")'"
run 0 status "$DELAYED"
grep -q "^$DELAYED cancelled " "$TMP/out" || fail "cancelled job status: $(cat "$TMP/out")"
run 1 result "$DELAYED"
run 1 cancel "$ID"                     # already done
run 1 status 0123456789abcdef0123456789abcdef
grep -q 'unknown' "$TMP/out" || fail "unknown job status: $(cat "$TMP/out")"
run 1 result 0123456789abcdef0123456789abcdef

run 0 stats
head -1 "$TMP/out" | grep -Eq '^QUEUE +QUEUED +SCHEDULED +RUNNING +DONE +FAILED +WORKERS$' \
    || fail "stats header: $(head -1 "$TMP/out")"
grep -Eq '^cli( +[0-9]+){6}$' "$TMP/out" || fail "stats has no row for queue cli: $(cat "$TMP/out")"
grep -Eq '^TOTAL( +[0-9]+){6}$' "$TMP/out" || fail "stats has no total row"

# ---- keys: a worker key may not act as a client; exit 3 --------------------------
DROVER_CERT="$TMP/keys/worker_secret" run 3 stats

# ---- up stops on SIGTERM and takes its workers with it --------------------------
kill -TERM "$UP_PID"
for _ in $(seq 150); do
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$UP_PID" 2>/dev/null; then
    fail "drover up still runs 15 s after SIGTERM"
else
    wait "$UP_PID"
    code=$?
    [ "$code" = 0 ] || fail "drover up exited $code after SIGTERM"
fi
UP_PID=
if pgrep -f "$TMP/keys/worker_secret" >/dev/null; then
    fail "workers outlived drover up: $(pgrep -af "$TMP/keys/worker_secret")"
fi

if [ "$failures" -ne 0 ]; then
    echo "cli_jobs: $failures failure(s)" >&2
    exit 1
fi
echo "cli_jobs: all checks passed"
