#!/usr/bin/env bash
# drover health against a stand-in HTTP responder on 127.0.0.1: 200 is
# healthy (exit 0), 503 is not (exit 1, status and body on stderr), a
# refused connection and a silent server exit 1 saying so, the latter
# within --timeout; DROVER_HEALTH_URL and --url choose where to ask.
. "$(dirname "$0")/../integration/lib.sh"
FAKE="$(dirname "$0")/fake_http.py"
command -v python3 >/dev/null || { echo "python3 is needed"; exit 77; }

# fake MODE: starts a responder; sets FAKE_PORT.
fake () {
    rm -f "$T/port-$1"
    python3 "$FAKE" "$1" "$T/port-$1" 2>>"$T/fake-$1.log" &
    PIDS+=($!)
    wait_for 10 test -s "$T/port-$1" || fail "fake responder $1 did not start"
    FAKE_PORT=$(cat "$T/port-$1")
}

# health EXPECTED-STATUS ARGS...: runs drover health, output in $T/out, $T/err.
health () {
    local want=$1
    shift
    "$DROVER" health "$@" >"$T/out" 2>"$T/err"
    local got=$?
    [ "$got" -eq "$want" ] || fail "'drover health $*' exited $got, expected $want ($(cat "$T/err"))"
}

fake 200
health 0 --url "http://127.0.0.1:$FAKE_PORT/readyz"
expect_eq "$(cat "$T/out")" ready "body of a healthy answer"
[ ! -s "$T/err" ] || fail "healthy answer wrote to stderr: $(cat "$T/err")"
grep -q '^GET /readyz HTTP/1' "$T/fake-200.log" || fail "request line: $(cat "$T/fake-200.log")"
DROVER_HEALTH_URL="http://127.0.0.1:$FAKE_PORT/healthz" health 0
grep -q '^GET /healthz HTTP/1' "$T/fake-200.log" || fail "DROVER_HEALTH_URL not used"
DROVER_HEALTH_URL="http://127.0.0.1:1/nothing" health 0 --url "http://127.0.0.1:$FAKE_PORT/metrics"
grep -q '^GET /metrics HTTP/1' "$T/fake-200.log" || fail "--url does not win over DROVER_HEALTH_URL"
pass "200 is healthy"

# A server that answers but keeps the connection: Content-Length ends it.
fake open
start=$(date +%s%N)
health 0 --url "http://127.0.0.1:$FAKE_PORT/readyz" --timeout 10000
took=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$took" -lt 5000 ] || fail "waited ${took} ms for a server that had answered"
pass "answer read to its Content-Length (${took} ms), not to the close"

fake 503
health 1 --url "http://127.0.0.1:$FAKE_PORT/readyz"
expect_eq "$(wc -l < "$T/err")" 1 "one line on stderr for 503"
grep -q 'HTTP 503: starting' "$T/err" || fail "503 message: $(cat "$T/err")"
pass "503 is unhealthy, with status and body"

# A port nobody listens on: take one from the OS, then free it.
free_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
health 1 --url "http://127.0.0.1:$free_port/readyz"
grep -qi 'refused' "$T/err" || fail "refused message: $(cat "$T/err")"
expect_eq "$(wc -l < "$T/err")" 1 "one line on stderr when refused"
pass "refused connection"

fake silent
start=$(date +%s%N)
health 1 --url "http://127.0.0.1:$FAKE_PORT/readyz" --timeout 400
took=$(( ($(date +%s%N) - start) / 1000000 ))
grep -q 'timeout' "$T/err" || fail "timeout message: $(cat "$T/err")"
[ "$took" -ge 350 ] && [ "$took" -lt 3000 ] || fail "--timeout 400 took ${took} ms"
pass "silent server: gave up after ${took} ms (--timeout 400)"

health 2 --url "ftp://127.0.0.1/"
health 2 --url "http://127.0.0.1:99999/"
health 2 --timeout 0
health 2 extra
pass "bad URL or timeout is a usage error"
