#!/usr/bin/env bash
# Settings of droverd and drover-worker from flags, DROVER_* variables and
# a config file: precedence (flag > environment > file > default) proved
# with --print-config; every bad setting exits 2 with one line naming where
# it came from; the example files in deploy/ load. Nothing is started:
# --print-config exits before any socket is opened.
. "$(dirname "$0")/../integration/lib.sh"
DEPLOY="$(cd "$(dirname "$0")/../../deploy" && pwd)"
# Settings must come from this script alone: drop any DROVER_* variable
# but the paths of the programs under test.
for var in $(compgen -e | grep '^DROVER_'); do
    case $var in
        DROVER_WORKER) ;;
        *) unset "$var" ;;
    esac
done

# setting NAME < OUTPUT: the value of NAME in --print-config output.
setting () {
    sed -n "s/^$1 = //p"
}

# expect_bad WHAT PATTERN CMD...: CMD exits 2, prints nothing on stdout, and
# its stderr contains PATTERN (a fixed string).
expect_bad () {
    local what=$1 pattern=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    [ "$rc" -eq 2 ] || fail "$what: exit $rc, expected 2 (stderr: $(cat "$T/err"))"
    grep -qF -- "$pattern" "$T/err" || fail "$what: stderr lacks '$pattern': $(cat "$T/err")"
    [ ! -s "$T/out" ] || fail "$what: printed settings anyway"
}

# ---- droverd: each source wins over the ones below it ------------------------
cat > "$T/broker.conf" <<'CONF'
# a comment, then a blank line

heartbeat = 200
data-dir = /from/file
max-payload = 1000
  max-queue-name=64
metrics = 9191
insecure = true
log-level = warn
max-inflight = 0
CONF
out=$("$DROVERD" --print-config) || fail "droverd --print-config"
expect_eq "$(setting heartbeat <<<"$out")" 1000 "default heartbeat"
expect_eq "$(setting metrics <<<"$out")" "tcp://*:9090" "default metrics"
expect_eq "$(setting max-queue-name <<<"$out")" 128 "default max-queue-name"

out=$("$DROVERD" --config "$T/broker.conf" --print-config) || fail "droverd with a file"
expect_eq "$(setting heartbeat <<<"$out")" 200 "file heartbeat"
expect_eq "$(setting data-dir <<<"$out")" /from/file "file data-dir"
expect_eq "$(setting max-payload <<<"$out")" 1000 "file max-payload"
expect_eq "$(setting max-queue-name <<<"$out")" 64 "file max-queue-name (indented, no spaces)"
expect_eq "$(setting metrics <<<"$out")" "tcp://*:9191" "file metrics as a port"
expect_eq "$(setting insecure <<<"$out")" true "file switch"
expect_eq "$(setting log-level <<<"$out")" warn "file log-level"
expect_eq "$(setting max-inflight <<<"$out")" 0 "file max-inflight"

out=$(DROVER_HEARTBEAT=300 DROVER_DATA_DIR=/from/env DROVER_METRICS=127.0.0.1:9292 \
      "$DROVERD" --config "$T/broker.conf" --print-config) || fail "droverd with file and env"
expect_eq "$(setting heartbeat <<<"$out")" 300 "env over file"
expect_eq "$(setting data-dir <<<"$out")" /from/env "env over file (data-dir)"
expect_eq "$(setting metrics <<<"$out")" "tcp://127.0.0.1:9292" "env metrics HOST:PORT"
expect_eq "$(setting max-payload <<<"$out")" 1000 "file still applies"

out=$(DROVER_HEARTBEAT=300 DROVER_DATA_DIR=/from/env \
      "$DROVERD" --config "$T/broker.conf" --heartbeat 400 --data-dir=/from/flag \
      --no-metrics --max-key 77 --print-config) || fail "droverd with file, env and flags"
expect_eq "$(setting heartbeat <<<"$out")" 400 "flag over env and file"
expect_eq "$(setting data-dir <<<"$out")" /from/flag "flag --name=value over env"
expect_eq "$(setting metrics <<<"$out")" off "--no-metrics"
expect_eq "$(setting max-key <<<"$out")" 77 "flag max-key"

# DROVER_CONFIG names the file; --config wins over it. The server
# certificate is DROVER_SERVER_CERT (DROVER_CERT is a client's).
printf 'heartbeat = 250\n' > "$T/other.conf"
out=$(DROVER_CONFIG="$T/broker.conf" "$DROVERD" --print-config)
expect_eq "$(setting heartbeat <<<"$out")" 200 "DROVER_CONFIG"
out=$(DROVER_CONFIG="$T/broker.conf" "$DROVERD" --config "$T/other.conf" --print-config)
expect_eq "$(setting heartbeat <<<"$out")" 250 "--config over DROVER_CONFIG"
out=$(DROVER_CERT=/client/cert DROVER_SERVER_CERT=/server/cert "$DROVERD" --print-config)
expect_eq "$(setting cert <<<"$out")" /server/cert "DROVER_SERVER_CERT"
out=$(DROVER_CERT=/client/cert "$DROVERD" --print-config)
grep -q '^# cert = ' <<<"$out" || fail "DROVER_CERT must not set droverd's certificate: $out"
out=$("$DROVERD" --metrics tcp://127.0.0.1:0 --print-config)
expect_eq "$(setting metrics <<<"$out")" "tcp://127.0.0.1:0" "metrics endpoint kept"

# What --print-config prints is a config file that gives the same settings.
"$DROVERD" --config "$T/broker.conf" --heartbeat 400 --print-config > "$T/printed.conf"
"$DROVERD" --config "$T/printed.conf" --print-config > "$T/reprinted.conf" \
    || fail "printed config does not load: $(cat "$T/printed.conf")"
cmp -s "$T/printed.conf" "$T/reprinted.conf" || fail "print, load, print differs"
pass "droverd: default < file < environment < flag"

# ---- droverd: bad settings exit 2 naming their source ------------------------
printf 'heartbeat = 200\nbogus = 1\n' > "$T/unknown.conf"
expect_bad "unknown name" "$T/unknown.conf:2: unknown setting 'bogus'" \
    "$DROVERD" --config "$T/unknown.conf" --print-config
printf '\nheartbeat = fast\n' > "$T/nan.conf"
expect_bad "bad number" "$T/nan.conf:2: heartbeat wants a whole number" \
    "$DROVERD" --config "$T/nan.conf" --print-config
printf 'max-queue-name = 129\n' > "$T/range.conf"
expect_bad "out of range in file" "$T/range.conf:1: max-queue-name wants a whole number from 1 to 128" \
    "$DROVERD" --config "$T/range.conf" --print-config
expect_bad "out of range flag" "--max-queue-name wants a whole number from 1 to 128, got '0'" \
    "$DROVERD" --max-queue-name 0 --print-config
printf 'heartbeat 200\n' > "$T/noeq.conf"
expect_bad "missing =" "$T/noeq.conf:1: expected 'name = value'" \
    "$DROVERD" --config "$T/noeq.conf" --print-config
printf 'heartbeat = 200\nheartbeat = 300\n' > "$T/twice.conf"
expect_bad "set twice" "$T/twice.conf:2: heartbeat is already set on line 1" \
    "$DROVERD" --config "$T/twice.conf" --print-config
printf 'insecure = maybe\n' > "$T/bool.conf"
expect_bad "bad switch" "$T/bool.conf:1: insecure wants true or false" \
    "$DROVERD" --config "$T/bool.conf" --print-config
printf 'print-config = true\n' > "$T/flagonly.conf"
expect_bad "flag-only name in a file" "unknown setting 'print-config'" \
    "$DROVERD" --config "$T/flagonly.conf" --print-config
expect_bad "missing file" "cannot read config file $T/none.conf (from --config)" \
    "$DROVERD" --config "$T/none.conf" --print-config
expect_bad "missing file from env" "cannot read config file $T/none.conf (from DROVER_CONFIG)" \
    env DROVER_CONFIG="$T/none.conf" "$DROVERD" --print-config
mkdir "$T/dir.conf"
expect_bad "directory as file" "cannot read config file $T/dir.conf" \
    "$DROVERD" --config "$T/dir.conf" --print-config
expect_bad "bad variable" "DROVER_MAX_PAYLOAD wants a whole number from 0 to 268435456, got 'lots'" \
    env DROVER_MAX_PAYLOAD=lots "$DROVERD" --print-config
expect_bad "bad variable even under a flag" "DROVER_HEARTBEAT wants" \
    env DROVER_HEARTBEAT=5 "$DROVERD" --heartbeat 100 --print-config
expect_bad "bad switch variable" "DROVER_INSECURE wants true or false" \
    env DROVER_INSECURE=maybe "$DROVERD" --print-config
expect_bad "bad choice variable" "DROVER_DURABILITY wants fsync or none, got 'sometimes'" \
    env DROVER_DURABILITY=sometimes "$DROVERD" --print-config
expect_bad "bad metrics" "--metrics wants PORT, HOST:PORT, tcp://HOST:PORT or off, got 'nine'" \
    "$DROVERD" --metrics nine --print-config
expect_bad "bad metrics port" "DROVER_METRICS wants PORT" \
    env DROVER_METRICS=host:99999 "$DROVERD" --print-config
expect_bad "unknown flag" "unknown option '--bogus'" "$DROVERD" --bogus
expect_bad "missing value" "--heartbeat needs a value" "$DROVERD" --heartbeat
expect_bad "stray argument" "unexpected argument 'extra'" "$DROVERD" extra
# Not only --print-config: a real start refuses the same way, before binding.
expect_bad "start with a bad file" "$T/nan.conf:2:" "$DROVERD" --config "$T/nan.conf"
pass "droverd: bad settings exit 2 naming the flag, variable or FILE:LINE"

# ---- drover-worker ---------------------------------------------------------------
cat > "$T/worker.conf" <<'CONF'
broker = tcp://127.0.0.1:1
insecure = true
queue = a
queue = b,c
exec = tr a-z A-Z # a # inside a value is no comment
concurrency = 2
prefetch = 5
processes = 3
log-level = debug
CONF
out=$("$DROVER_WORKER" --config "$T/worker.conf" --print-config) || fail "worker with a file"
expect_eq "$(setting queue <<<"$out")" a,b,c "file queues add up"
expect_eq "$(setting exec <<<"$out")" "tr a-z A-Z # a # inside a value is no comment" "file exec"
expect_eq "$(setting concurrency <<<"$out")" 2 "file concurrency"
expect_eq "$(setting prefetch <<<"$out")" 5 "file prefetch"
expect_eq "$(setting insecure <<<"$out")" true "file insecure"

out=$(DROVER_CONCURRENCY=3 DROVER_QUEUE=envq DROVER_LOG_FORMAT=json \
      "$DROVER_WORKER" --config "$T/worker.conf" --print-config) || fail "worker with env"
expect_eq "$(setting concurrency <<<"$out")" 3 "env over file"
expect_eq "$(setting queue <<<"$out")" envq "env queue list replaces the file's"
expect_eq "$(setting log-format <<<"$out")" json "env log format"
expect_eq "$(setting prefetch <<<"$out")" 5 "file still applies"

out=$(DROVER_CONCURRENCY=3 DROVER_QUEUE=envq DROVER_BROKER=tcp://127.0.0.1:2 \
      "$DROVER_WORKER" --config "$T/worker.conf" --concurrency 4 -q x --queue y \
      --processes auto --print-config) || fail "worker with flags"
expect_eq "$(setting concurrency <<<"$out")" 4 "flag over env"
expect_eq "$(setting queue <<<"$out")" x,y "flag queues replace env's"
expect_eq "$(setting broker <<<"$out")" tcp://127.0.0.1:2 "env broker over file"
expect_eq "$(setting processes <<<"$out")" auto "flag processes auto"
expect_eq "$(setting connect-timeout <<<"$out")" 5 "default connect timeout"
out=$(DROVER_CONNECT_TIMEOUT=30 "$DROVER_WORKER" --config "$T/worker.conf" --print-config) \
    || fail "worker with DROVER_CONNECT_TIMEOUT"
expect_eq "$(setting connect-timeout <<<"$out")" 30 "connect timeout from env"

# A handler from a higher source replaces the other kind from a lower one.
out=$(DROVER_PLUGIN=/lib/x.so:run "$DROVER_WORKER" --config "$T/worker.conf" --print-config)
expect_eq "$(setting plugin <<<"$out")" /lib/x.so:run "env plugin over file exec"
grep -q '^# exec = ' <<<"$out" || fail "file exec still shown under env plugin: $out"
out=$(DROVER_PLUGIN=/lib/x.so:run "$DROVER_WORKER" --config "$T/worker.conf" --exec cat --print-config)
expect_eq "$(setting exec <<<"$out")" cat "flag exec over env plugin"
expect_bad "both handlers from one source" "not both" \
    "$DROVER_WORKER" --config "$T/worker.conf" --exec cat --plugin /lib/x.so:run --print-config

# The variables it has always read keep working.
out=$(DROVER_BROKER=tcp://127.0.0.1:3 DROVER_INSECURE=1 "$DROVER_WORKER" -q q --exec cat --print-config) \
    || fail "worker from DROVER_BROKER and DROVER_INSECURE=1"
expect_eq "$(setting broker <<<"$out")" tcp://127.0.0.1:3 "DROVER_BROKER"
expect_eq "$(setting insecure <<<"$out")" true "DROVER_INSECURE=1"
out=$(DROVER_BROKER=tcp://127.0.0.1:3 DROVER_SERVER_KEY=/k/server DROVER_CERT=/k/worker_secret \
      "$DROVER_WORKER" -q q --exec cat --log-json --print-config) || fail "worker keys from env"
expect_eq "$(setting server-key <<<"$out")" /k/server "DROVER_SERVER_KEY"
expect_eq "$(setting cert <<<"$out")" /k/worker_secret "DROVER_CERT"
expect_eq "$(setting log-format <<<"$out")" json "--log-json"

"$DROVER_WORKER" --config "$T/worker.conf" --print-config > "$T/wprinted.conf"
"$DROVER_WORKER" --config "$T/wprinted.conf" --print-config > "$T/wreprinted.conf" \
    || fail "printed worker config does not load: $(cat "$T/wprinted.conf")"
cmp -s "$T/wprinted.conf" "$T/wreprinted.conf" || fail "worker print, load, print differs"
pass "drover-worker: default < file < environment < flag"

printf 'broker = tcp://127.0.0.1:1\nthreads = 4\n' > "$T/wunknown.conf"
expect_bad "worker unknown name" "$T/wunknown.conf:2: unknown setting 'threads'" \
    "$DROVER_WORKER" --config "$T/wunknown.conf" --print-config
printf 'concurrency = 0\n' > "$T/wrange.conf"
expect_bad "worker out of range" "$T/wrange.conf:1: concurrency wants a whole number from 1 to 1000000" \
    "$DROVER_WORKER" --config "$T/wrange.conf" --print-config
printf 'prefetch = some\n' > "$T/wnan.conf"
expect_bad "worker bad number" "$T/wnan.conf:1: prefetch wants a whole number from 0 to 1000000 or auto" \
    "$DROVER_WORKER" --config "$T/wnan.conf" --print-config
printf 'exec\n' > "$T/wnoeq.conf"
expect_bad "worker missing =" "$T/wnoeq.conf:1: expected 'name = value'" \
    "$DROVER_WORKER" --config "$T/wnoeq.conf" --print-config
expect_bad "worker missing file" "cannot read config file $T/none.conf" \
    "$DROVER_WORKER" --config "$T/none.conf" --print-config
expect_bad "worker bad variable" "DROVER_PROCESSES wants a whole number from 0 to 1000000 or auto, got 'many'" \
    env DROVER_PROCESSES=many "$DROVER_WORKER" --config "$T/worker.conf" --print-config
expect_bad "worker bad switch variable" "DROVER_INSECURE wants true or false, got 'perhaps'" \
    env DROVER_INSECURE=perhaps "$DROVER_WORKER" --config "$T/worker.conf" --print-config
expect_bad "worker bad level variable" "DROVER_LOG_LEVEL wants debug, info, warn or error" \
    env DROVER_LOG_LEVEL=chatty "$DROVER_WORKER" --config "$T/worker.conf" --print-config
expect_bad "worker zero connect timeout" "--connect-timeout wants a whole number from 1 to 3600" \
    "$DROVER_WORKER" --config "$T/worker.conf" --connect-timeout 0 --print-config
pass "drover-worker: bad settings exit 2 naming the flag, variable or FILE:LINE"

# ---- the example files in deploy/ --------------------------------------------
"$DROVERD" --config "$DEPLOY/droverd.conf.example" --print-config > "$T/ex1" \
    || fail "deploy/droverd.conf.example does not load"
expect_eq "$(setting data-dir < "$T/ex1")" /var/lib/drover "example data-dir"
expect_eq "$(setting metrics < "$T/ex1")" "tcp://*:9090" "example metrics"
"$DROVER_WORKER" --config "$DEPLOY/drover-worker.conf.example" --print-config > "$T/ex2" \
    || fail "deploy/drover-worker.conf.example does not load"
expect_eq "$(setting queue < "$T/ex2")" images,thumbnails "example queues"
expect_eq "$(setting connect-timeout < "$T/ex2")" 30 "example connect timeout"
pass "deploy/*.conf.example load"
