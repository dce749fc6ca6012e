#!/bin/sh
# drover-worker's command-line contract, without a broker:
#   bad usage -> exit 2 with one line on stderr; a plugin that cannot be
#   loaded -> exit 2; unreadable certificates or an unreachable broker ->
#   exit 3 with one line naming the cause, and no endless restarts.
# usage: test_worker_cli.sh DROVER_WORKER EXAMPLE_PLUGIN
set -u
worker=$1
plugin=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/drover-test-worker-cli.XXXXXX")
trap 'rm -rf "$dir"' EXIT
failed=0
unset DROVER_BROKER DROVER_SERVER_KEY DROVER_CERT DROVER_INSECURE

# expect NAME STATUS GREP -- ARGS...: runs the worker, checks its exit status
# and that the last line of stderr contains GREP.
expect () {
    name=$1 status=$2 pattern=$3
    shift 4
    "$worker" "$@" >"$dir/out" 2>"$dir/err"
    got=$?
    last=$(tail -n 1 "$dir/err")
    if [ "$got" -ne "$status" ] || ! printf '%s' "$last" | grep -q -- "$pattern"; then
        echo "FAILED $name: status $got (want $status), stderr:"
        sed 's/^/    /' "$dir/err"
        failed=1
    else
        echo "ok     $name"
    fi
}

ok="--insecure --broker tcp://127.0.0.1:1 --queue q"
expect no_args 2 "no broker" --
expect unknown_option 2 "unknown option '--bogus'" -- $ok --exec cat --bogus
expect missing_value 2 "needs a value" -- $ok --exec
expect no_queue 2 "no queue" -- --insecure --broker tcp://127.0.0.1:1 --exec cat
expect bad_queue 2 "bad queue name" -- $ok --queue 'a b' --exec cat
expect no_handler 2 "no handler" -- $ok
expect both_handlers 2 "not both" -- $ok --exec cat --plugin "$plugin:upper"
expect bad_processes 2 "processes" -- $ok --exec cat --processes 2x
expect bad_concurrency 2 "concurrency" -- $ok --exec cat --concurrency 0
expect bad_log_level 2 "log-level" -- $ok --exec cat --log-level loud
expect no_keys 2 "server-key" -- --broker tcp://127.0.0.1:1 --queue q --exec cat
expect plugin_spec 2 "LIBRARY:SYMBOL" -- $ok --plugin "$plugin"
expect plugin_missing 2 "cannot load plugin" -- $ok --plugin "$dir/nope.so:upper"
expect plugin_symbol 2 "has no symbol 'nope'" -- $ok --plugin "$plugin:nope"
expect unreadable_key 3 "cannot read certificate" -- \
    --broker tcp://127.0.0.1:1 --server-key "$dir/none" --cert "$dir/none_secret" \
    --queue q --exec cat

# The environment stands in for the flags.
DROVER_BROKER=tcp://127.0.0.1:1 DROVER_INSECURE=1 \
    expect env_no_queue 2 "no queue" -- --exec cat

"$worker" --help >"$dir/out" 2>&1 && grep -q -- "--plugin" "$dir/out" \
    && echo "ok     help" || { echo "FAILED help"; failed=1; }

# Nothing listens on port 1: every child fails its first connection, and
# the supervisor gives up with status 3 instead of restarting them forever.
start=$(date +%s)
expect unreachable 3 "cannot connect to broker tcp://127.0.0.1:1" -- \
    $ok --exec cat --processes 3 --log-level error
took=$(( $(date +%s) - start ))
if [ "$took" -gt 20 ]; then
    echo "FAILED unreachable took ${took}s"
    failed=1
fi
if [ "$(grep -c '^drover-worker: ' "$dir/err")" -ne 1 ]; then
    echo "FAILED unreachable: want the reason exactly once"
    failed=1
fi
# The same without a supervisor; --connect-timeout 8 keeps it trying past
# the 5 s default (a lower bound only: a loaded machine may be slower).
"$worker" $ok --exec cat --processes 0 --log-level error --connect-timeout 8 \
    >"$dir/out" 2>"$dir/err" &
single=$!
sleep 6
if kill -0 "$single" 2>/dev/null; then
    wait "$single"
    got=$?
    if [ "$got" -eq 3 ] && grep -q "cannot connect to broker" "$dir/err"; then
        echo "ok     unreachable_single (gave up after --connect-timeout 8)"
    else
        echo "FAILED unreachable_single: status $got (want 3), stderr:"
        sed 's/^/    /' "$dir/err"
        failed=1
    fi
else
    echo "FAILED unreachable_single: gave up before its --connect-timeout of 8 s"
    sed 's/^/    /' "$dir/err"
    failed=1
fi

exit $failed
