#!/usr/bin/env bash
# CLI checks that need no broker: usage errors exit 2, help exits 0, keygen
# writes a proper key pair and refuses to overwrite, and connecting to
# nothing gives up with exit 3 within the timeout.
#
# usage: cli_usage.sh PATH_TO_DROVER
set -u
DROVER=${1:?usage: cli_usage.sh PATH_TO_DROVER}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/drover-cli-usage.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0

fail () {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# expect CODE ARGS... : runs drover, checks the exit code; output in $TMP/out, $TMP/err
expect () {
    local want=$1
    shift
    "$DROVER" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
    local got=$?
    if [ "$got" != "$want" ]; then
        fail "drover $* exited $got, wanted $want; stderr: $(head -c 300 "$TMP/err")"
        return 1
    fi
    return 0
}

# An error is one line on stderr starting with "drover: ". (Library log
# lines, which carry a timestamp, may come before it.)
expect_error_line () {
    local lines
    lines=$(grep -c '^drover: ' "$TMP/err")
    if [ "$lines" != 1 ]; then
        fail "drover $*: want one 'drover: ' error line on stderr, got $lines: $(head -c 300 "$TMP/err")"
    fi
}

now_ms () {
    echo $(( $(date +%s%N) / 1000000 ))
}

# ---- top level ---------------------------------------------------------------
expect 0 --help && grep -q 'Usage: drover' "$TMP/out" || fail "--help prints no usage"
[ -s "$TMP/err" ] && fail "--help wrote to stderr"
expect 0 help submit && grep -q 'Usage: drover submit' "$TMP/out" || fail "help submit"
expect 0 --version && grep -q '^drover [0-9]' "$TMP/out" || fail "--version"
expect 2                               # no command: usage on stderr
expect 2 frobnicate && expect_error_line frobnicate
grep -q "unknown command 'frobnicate'" "$TMP/err" || fail "unknown command message"
expect 2 --frobnicate && expect_error_line --frobnicate

# ---- every command has --help on stdout, exit 0 -----------------------------
for cmd in keygen submit map result status cancel stats workers health queues pause resume dead up demo bench; do
    if expect 0 "$cmd" --help; then
        grep -q "Usage: drover $cmd" "$TMP/out" || fail "$cmd --help prints no usage"
        [ -s "$TMP/err" ] && fail "$cmd --help wrote to stderr"
    fi
done

# ---- usage errors: exit 2, before any connection attempt --------------------
# (DROVER_BROKER points nowhere: a command that tried to connect would fail
# with 3, not 2.)
export DROVER_BROKER=tcp://127.0.0.1:1
unset DROVER_SERVER_KEY DROVER_CERT DROVER_INSECURE
expect 2 submit --insecure --data x                      && expect_error_line  # no -q
expect 2 submit -q jobs --insecure --bogus               && expect_error_line
grep -q "unknown option '--bogus'" "$TMP/err" || fail "unknown option message"
expect 2 submit -q                                        # -q without a value
grep -q "needs a value" "$TMP/err" || fail "missing value message"
expect 2 submit -q jobs --insecure --priority 42
expect 2 submit -q jobs --insecure --priority x
expect 2 submit -q jobs --insecure --timeout abc
expect 2 submit -q jobs --insecure --timeout -1
expect 2 submit -q jobs --insecure --job-timeout soon
expect 2 submit -q jobs --insecure --attempts 0
expect 2 submit -q jobs --insecure --wait --no-wait
expect 2 submit -q jobs --insecure --each-line --data x
expect 2 submit -q jobs --insecure stray-argument
expect 2 submit -q jobs --connect-timeout 0 --insecure
expect 2 map --insecure                                   # no -q
expect 2 submit -q 'bad queue!' --insecure --data x && expect_error_line
grep -q "bad queue name" "$TMP/err" || fail "bad queue name message"
expect 2 map -q "$(printf 'q%.0s' $(seq 129))" --insecure    # 129 characters
expect 2 up --queue 'a b' --exec cat
expect 2 map -q jobs --insecure --data x                  # map takes stdin only
expect 2 map -q jobs --insecure --window 0
expect 2 result --insecure                                # no id
expect 2 result --insecure not-an-id && expect_error_line
expect 2 status --insecure 0123456789abcdef0123456789abcde    # 31 digits
expect 2 status --insecure --wait 0123456789abcdef0123456789abcdef
expect 2 cancel --insecure zz23456789abcdef0123456789abcdef
expect 2 stats --insecure extra
expect 2 submit -q jobs --insecure --data x --at soon && expect_error_line
grep -q -- "--at wants" "$TMP/err" || fail "bad --at message"
expect 2 submit -q jobs --insecure --data x --at 2026-02-30T10:00:00Z     # no such day
expect 2 submit -q jobs --insecure --data x --at 2026-11-25T24:00:00Z
expect 2 submit -q jobs --insecure --data x --at 2026-11-25T16:30:00+2   # offset needs HH
expect 2 submit -q jobs --insecure --data x --at 1969-12-31T23:59:59Z
expect 2 submit -q jobs --insecure --data x --at -5
expect 2 submit -q jobs --insecure --data x --at 1795000000 --delay 5 && expect_error_line
expect 2 map -q jobs --insecure --at nope
expect 2 queues --insecure extra && expect_error_line
expect 2 queues --insecure --limit 5
expect 2 queues --insecure --timeout 0
expect 2 pause --insecure && expect_error_line            # no queue
grep -q "missing QUEUE" "$TMP/err" || fail "pause without a queue: no 'missing QUEUE'"
expect 2 pause --insecure 'bad queue!' && expect_error_line
expect 2 pause --insecure q1 q2
expect 2 resume --insecure
expect 2 resume --insecure --bogus q
expect 2 dead --insecure && expect_error_line             # no action
expect 2 dead --insecure frob q && expect_error_line
grep -q "unknown action 'frob'" "$TMP/err" || fail "dead: unknown action message"
expect 2 dead list --insecure                             # no queue
expect 2 dead list --insecure 'a b'
expect 2 dead list --insecure q --limit 0
expect 2 dead list --insecure q --limit x
expect 2 dead list --insecure q 0123456789abcdef0123456789abcdef   # list takes no ids
expect 2 dead retry --insecure q not-an-id && expect_error_line
expect 2 dead purge --insecure q 0123456789abcdef0123456789abcdef zz
expect 2 dead purge --insecure q --limit 3
expect 2 dead retry --insecure q --timeout -1
expect 2 up                                               # no queue, no handler
expect 2 up --queue q                                     # no handler
expect 2 up --queue q --exec cat --plugin x.so:f          # two handlers
expect 2 up --queue q --plugin nocolon
expect 2 demo --n 1
expect 2 demo --chunks 0
expect 2 demo --processes many
expect 2 keygen                                           # no PATH
expect 2 keygen "$TMP/a" "$TMP/b"
expect 2 keygen "$TMP/bad-role" --role superuser
[ -e "$TMP/bad-role" ] && fail "keygen with a bad role wrote a file"
# No keys and no --insecure is a usage error, not a connection error.
expect 2 stats && expect_error_line stats
grep -q -- '--server-key' "$TMP/err" || fail "missing keys message does not say what to give"

# ---- bench: bad usage (a real run is tests/bench_smoke.sh) ----------------------
expect 2 bench --jobs 0 && expect_error_line bench --jobs 0
expect 2 bench --frobnicate && expect_error_line bench --frobnicate

# ---- keygen ----------------------------------------------------------------------
KEY="$TMP/keys/worker1"
mkdir -p "$TMP/keys"
if expect 0 keygen "$KEY" --role worker; then
    [ -f "$KEY" ] || fail "keygen wrote no public certificate"
    [ -f "${KEY}_secret" ] || fail "keygen wrote no secret certificate"
    mode=$(stat -c %a "${KEY}_secret")
    [ "$mode" = 600 ] || fail "secret certificate has mode $mode, not 600"
    grep -q 'public-key' "$KEY" || fail "public certificate lacks the public key"
    grep -q 'secret-key' "$KEY" && fail "public certificate holds the secret key"
    grep -q 'secret-key' "${KEY}_secret" || fail "secret certificate lacks the secret key"
    grep -Eq 'role *= *"worker"' "$KEY" || fail "public certificate lacks role = worker"
    grep -Eq 'role *= *"worker"' "${KEY}_secret" || fail "secret certificate lacks role = worker"
    # The secret key must never be printed.
    secret=$(sed -n 's/.*secret-key *= *"\(.*\)".*/\1/p' "${KEY}_secret")
    [ -n "$secret" ] || fail "cannot read the secret key back"
    if [ -n "$secret" ] && grep -qF -- "$secret" "$TMP/out" "$TMP/err"; then
        fail "keygen printed the secret key"
    fi
    public=$(sed -n 's/.*public-key *= *"\(.*\)".*/\1/p' "$KEY")
    grep -qF -- "$public" "$TMP/out" || fail "keygen does not print the public key"
fi

# Refuses to overwrite, either file, and leaves them as they were.
before=$(cat "$KEY" "${KEY}_secret" | md5sum)
expect 1 keygen "$KEY" --role worker && expect_error_line keygen
grep -q -- '--force' "$TMP/err" || fail "overwrite refusal does not mention --force"
[ "$(cat "$KEY" "${KEY}_secret" | md5sum)" = "$before" ] || fail "refused keygen changed the files"
mv "$KEY" "$TMP/keys/moved"
expect 1 keygen "$KEY"                                # only KEY_secret exists
[ -e "$KEY" ] && fail "keygen wrote KEY although KEY_secret existed"
mv "$TMP/keys/moved" "$KEY"
# --force replaces both, with a new key pair and the new role.
chmod 644 "${KEY}_secret"
expect 0 keygen "$KEY" --role admin --force
[ "$(cat "$KEY" "${KEY}_secret" | md5sum)" != "$before" ] || fail "--force kept the old key"
grep -Eq 'role *= *"admin"' "$KEY" || fail "--force did not store the new role"
mode=$(stat -c %a "${KEY}_secret")
[ "$mode" = 600 ] || fail "replaced secret certificate has mode $mode, not 600"
# Default role is producer.
expect 0 keygen "$TMP/keys/producer1"
grep -Eq 'role *= *"producer"' "$TMP/keys/producer1" || fail "default role is not producer"
# A directory that does not exist is an error, not a crash.
expect 1 keygen "$TMP/no/such/dir/key" && expect_error_line

# ---- connecting to nothing: exit 3 within the timeout --------------------------
start=$(now_ms)
expect 3 stats --insecure --broker tcp://127.0.0.1:1 --connect-timeout 1 && expect_error_line
elapsed=$(( $(now_ms) - start ))
[ "$elapsed" -le 6000 ] || fail "connecting to nothing took ${elapsed} ms with --connect-timeout 1"
# Same through the environment, with CURVE keys, and with submit.
export DROVER_SERVER_KEY="$KEY" DROVER_CERT="$TMP/keys/producer1_secret"
start=$(now_ms)
expect 3 submit -q jobs --data hello --connect-timeout 1.5 && expect_error_line
elapsed=$(( $(now_ms) - start ))
[ "$elapsed" -le 6500 ] || fail "submit to nothing took ${elapsed} ms with --connect-timeout 1.5"
# A key file that cannot be read is a key problem: exit 3, naming the file.
expect 3 status --cert "$TMP/keys/missing_secret" 0123456789abcdef0123456789abcdef
grep -q 'missing_secret' "$TMP/err" || fail "unreadable key message does not name the file"
unset DROVER_BROKER DROVER_SERVER_KEY DROVER_CERT

# ---- state: usage errors exit 2 before any connection -------------------------
for sub in "" " get" " set" " del" " list" " incr" " watch"; do
    # shellcheck disable=SC2086
    if expect 0 state$sub --help; then
        grep -q "Usage: drover state" "$TMP/out" || fail "state$sub --help prints no usage"
    fi
done
expect 0 help state && grep -q 'Usage: drover state' "$TMP/out" || fail "help state"
grep -q 'state' <("$DROVER" --help) || fail "--help does not list state"
# No broker is listening on port 1: each of these must fail as usage first.
export DROVER_BROKER=tcp://127.0.0.1:1 DROVER_INSECURE=1
expect 2 state && expect_error_line state
expect 2 state frob && expect_error_line state frob
grep -q "unknown subcommand 'frob'" "$TMP/err" || fail "state frob message"
expect 2 state get && expect_error_line state get
expect 2 state get ns && expect_error_line state get ns
grep -q 'missing KEY' "$TMP/err" || fail "state get ns: no 'missing KEY'"
expect 2 state get ns k extra && expect_error_line state get ns k extra
expect 2 state get 'bad ns' k && expect_error_line state get bad ns
grep -q "bad namespace" "$TMP/err" || fail "state get with a bad namespace: message"
expect 2 state get ns '' && expect_error_line state get ns empty key
expect 2 state get ns "$(head -c 1025 /dev/zero | tr '\0' k)" && expect_error_line state get long key
expect 2 state set ns k && expect_error_line state set ns k
expect 2 state set ns k v w && expect_error_line state set ns k v w
expect 2 state del ns && expect_error_line state del ns
expect 2 state list && expect_error_line state list
expect 2 state list ns p extra && expect_error_line state list extra
expect 2 state incr ns && expect_error_line state incr ns
expect 2 state incr ns k x && expect_error_line state incr ns k x
grep -q "BY must be a whole number" "$TMP/err" || fail "state incr with a bad BY: message"
expect 2 state incr ns k 1 2 && expect_error_line state incr extra
expect 2 state watch && expect_error_line state watch
expect 2 state watch ns extra && expect_error_line state watch extra
expect 2 state get ns k --bogus && expect_error_line state get --bogus
expect 2 state get ns k --timeout 0 && expect_error_line state get --timeout 0
# Well-formed, but nothing to talk to: exit 3
expect 3 state get ns k --connect-timeout 0.5 && expect_error_line state get unreachable
unset DROVER_BROKER DROVER_INSECURE

# ---- lock, event, barrier: usage errors exit 2 before any connection ---------
for cmd in lock event barrier; do
    if expect 0 $cmd --help; then
        grep -q "Usage: drover $cmd" "$TMP/out" || fail "$cmd --help prints no usage"
        [ -s "$TMP/err" ] && fail "$cmd --help wrote to stderr"
    fi
    grep -q "^  $cmd " <("$DROVER" --help) || fail "--help does not list $cmd"
done
expect 0 event wait --help && grep -q 'Usage: drover event' "$TMP/out" || fail "event wait --help"
expect 2 lock && expect_error_line lock
grep -q 'missing NAME' "$TMP/err" || fail "lock: no 'missing NAME'"
expect 2 lock L && expect_error_line lock L
grep -q "missing '-- CMD'" "$TMP/err" || fail "lock L: no 'missing -- CMD'"
expect 2 lock L -- && expect_error_line lock L --
expect 2 lock L true && expect_error_line lock L true
expect 2 lock 'bad name' -- true && expect_error_line lock bad name
grep -q "bad name" "$TMP/err" || fail "lock with a bad name: message"
expect 2 lock L extra -- true && expect_error_line lock extra
expect 2 lock L --timeout -1 -- true && expect_error_line lock --timeout -1
expect 2 lock L --timeout x -- true && expect_error_line lock --timeout x
expect 2 lock L --bogus -- true && expect_error_line lock --bogus
# Options after -- belong to CMD: no --insecure here, so no keys
expect 2 lock L -- true --insecure && expect_error_line lock -- true --insecure
expect 2 event && expect_error_line event
expect 2 event frob E && expect_error_line event frob
grep -q "unknown subcommand 'frob'" "$TMP/err" || fail "event frob message"
expect 2 event wait && expect_error_line event wait
expect 2 event set E extra && expect_error_line event set extra
expect 2 event set 'bad name' && expect_error_line event set bad name
expect 2 event clear E --timeout 1 && expect_error_line event clear --timeout
expect 2 event wait E --timeout abc && expect_error_line event wait --timeout abc
expect 2 barrier && expect_error_line barrier
expect 2 barrier B && expect_error_line barrier B
grep -q 'missing --parties' "$TMP/err" || fail "barrier B: no 'missing --parties'"
expect 2 barrier B --parties 0 && expect_error_line barrier --parties 0
expect 2 barrier B --parties x && expect_error_line barrier --parties x
expect 2 barrier B C --parties 2 && expect_error_line barrier extra
expect 2 barrier 'bad name' --parties 2 && expect_error_line barrier bad name
# Well-formed, but nothing to talk to: exit 3
export DROVER_BROKER=tcp://127.0.0.1:1 DROVER_INSECURE=1
expect 3 lock L --connect-timeout 0.5 -- true && expect_error_line lock unreachable
expect 3 event set E --connect-timeout 0.5 && expect_error_line event unreachable
expect 3 barrier B --parties 2 --connect-timeout 0.5 && expect_error_line barrier unreachable
unset DROVER_BROKER DROVER_INSECURE

if [ "$failures" -ne 0 ]; then
    echo "cli_usage: $failures failure(s)" >&2
    exit 1
fi
echo "cli_usage: all checks passed"
