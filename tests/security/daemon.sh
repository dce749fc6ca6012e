#!/usr/bin/env bash
# Access rules end to end with the real droverd, drover and drover-worker:
# the submitting key reaches the worker and is shown only to admins and to
# the key itself; queue-limited keys; refusals logged with the key; the
# allow-list picked up while running (added, removed, changed keys) and on
# SIGHUP; a server secret readable by others refused unless
# --allow-open-key; limits given as flags refused with clear messages while
# an honest client is served.
. "$(dirname "$0")/../integration/lib.sh"

drover () { "$DROVER" "$@"; }
# pubkey NAME: the Z85 public key of keys/NAME
pubkey () { sed -n 's/^ *public-key = "\(.*\)"$/\1/p' "$T/keys/$1"; }
# as NAME CMD...: runs a drover command with keys/NAME_secret
as () { local who=$1; shift; DROVER_CERT="$T/keys/${who}_secret" "$DROVER" "$@"; }

make_keys
drover keygen "$T/keys/producer2" --role producer >/dev/null || fail "keygen producer2"
drover keygen "$T/keys/limited" --queues 'billing,rep.*' >/dev/null || fail "keygen limited"
drover keygen "$T/keys/lworker" --role worker --queues billing >/dev/null || fail "keygen lworker"
drover keygen "$T/keys/leaver" --role worker >/dev/null || fail "keygen leaver"
drover keygen "$T/keys/latecomer" >/dev/null || fail "keygen latecomer"
drover keygen "$T/keys/promoted" >/dev/null || fail "keygen promoted"
for k in producer2 limited lworker leaver promoted; do cp "$T/keys/$k" "$T/allow/$k.cert"; done

start_broker --no-metrics --durability none
P=$(pubkey producer)
[ ${#P} -eq 40 ] || fail "cannot read the producer's public key"

# --- The submitting key --------------------------------------------------
start_workers who who 1 --exec 'printf %s "$DROVER_SUBMITTER"'
expect_eq "$(drover submit -q who --data x --wait --timeout 20)" "$P" "DROVER_SUBMITTER seen by --exec"
# A job nobody serves, to look at its status as different keys
id=$(drover submit -q parked --data x --timeout 10) || fail "submit parked"
as admin status "$id" | grep -qF -- "submitter=$P" || fail "admin does not see the submitter"
as producer status "$id" | grep -qF -- "submitter=$P" || fail "the submitting key does not see itself"
out=$(as producer2 status "$id") || fail "producer2 status"
echo "$out" | grep -q "queued" || fail "producer2 status: $out"
echo "$out" | grep -q "submitter" && fail "another producer key sees the submitter: $out"

# --- Roles and queue limits, each refusal logged with the key -----------
as producer pause parked 2>"$T/pause.err" >/dev/null
expect_eq "$?" "3" "exit code for a producer pausing a queue"
grep -q "admin" "$T/pause.err" || fail "no clear message: $(cat "$T/pause.err")"
wait_for 5 grep -q "refused: admin only.*" "$T/broker.log" || fail "admin-only refusal not logged"
grep "refused: admin only" "$T/broker.log" | grep -qF -- "$P" || fail "admin-only refusal does not name the key"
L=$(pubkey limited)
as limited submit -q billing --data x --timeout 10 >/dev/null || fail "limited key, own queue"
as limited submit -q rep.daily --data x --timeout 10 >/dev/null || fail "limited key, prefix queue"
as limited submit -q other --data x --timeout 10 2>"$T/limited.err" >/dev/null
expect_eq "$?" "3" "exit code for a limited key's submit to another queue"
[ -s "$T/limited.err" ] || fail "no message for a denied queue"
grep "to queue other refused" "$T/broker.log" | grep -qF -- "$L" || fail "queue refusal does not name the key"
as limited status "$id" 2>"$T/lstatus.err" >/dev/null
expect_eq "$?" "3" "exit code for a limited key's status of another queue's job"
as limited cancel "$id" 2>/dev/null >/dev/null
[ $? -ne 0 ] || fail "a limited key cancelled another queue's job"
as producer status "$id" | grep -q queued || fail "job changed by a refused cancel"
as limited stats >"$T/lstats.out" 2>&1 || fail "limited stats"
grep -q billing "$T/lstats.out" || fail "limited stats lacks its queue: $(cat "$T/lstats.out")"
grep -q parked "$T/lstats.out" && fail "limited stats shows another queue: $(cat "$T/lstats.out")"
LW=$(pubkey lworker)
timeout 20 "$DROVER_WORKER" --broker "$WORKERS" --server-key "$T/keys/server" \
    --cert "$T/keys/lworker_secret" --queue billing,other --processes 0 --exec cat \
    >"$T/lworker.log" 2>&1
expect_eq "$?" "3" "exit code for a worker key serving a queue it may not"
grep "may not serve queue other" "$T/broker.log" | grep -qF -- "$LW" || fail "worker queue refusal not logged with the key"

# --- Allow-list changes while running ------------------------------------
# A key added to the directory is admitted without a restart
as latecomer submit -q who --data x --timeout 5 2>/dev/null >/dev/null
expect_eq "$?" "3" "exit code for a key not yet allowed"
cp "$T/keys/latecomer" "$T/allow/latecomer.cert"
expect_eq "$(as latecomer submit -q who --data late --wait --timeout 20)" "$(pubkey latecomer)" \
    "a key added while the broker runs"

# ... and refused again once removed
rm "$T/allow/latecomer.cert"
wait_for 5 sh -c "! DROVER_CERT='$T/keys/latecomer_secret' '$DROVER' submit -q who --data x --timeout 5 >/dev/null 2>&1" \
    || fail "a removed producer key still submits"
as latecomer submit -q who --data x --timeout 5 2>/dev/null >/dev/null
expect_eq "$?" "3" "exit code for a removed producer key"

# Removing a key closes its live session: its worker is no longer served
"$DROVER_WORKER" --broker "$WORKERS" --server-key "$T/keys/server" \
    --cert "$T/keys/leaver_secret" --queue leave --processes 0 --exec cat \
    >"$T/leaver.log" 2>&1 &
leaver_pid=$!
PIDS+=("$leaver_pid")
expect_eq "$(drover submit -q leave --data before --wait --timeout 20)" "before" "leaver serves"
rm "$T/allow/leaver.cert"
wait_for 5 grep -q "closing session of worker.*key removed" "$T/broker.log" || fail "no closing line"
grep "closing session of worker" "$T/broker.log" | grep -qF -- "$(pubkey leaver)" || fail "closing line lacks the key"
wait_for 5 grep -q "removed from the broker's allow-list" "$T/leaver.log" || fail "the worker was not told"
left=$(drover submit -q leave --data after --timeout 10) || fail "submit after removal"
sleep 1.5
drover status "$left" | grep -q queued || fail "a removed worker key was still served: $(drover status "$left")"
# ... and it cannot connect again
timeout 20 "$DROVER_WORKER" --broker "$WORKERS" --server-key "$T/keys/server" \
    --cert "$T/keys/leaver_secret" --queue leave --processes 0 --exec cat \
    >"$T/leaver2.log" 2>&1
expect_eq "$?" "3" "exit code for a removed worker key"

# Changing a key's role takes effect: a producer key made admin may pause
as promoted pause parked 2>/dev/null >/dev/null
expect_eq "$?" "3" "exit code before promotion"
sed -i 's/role = "producer"/role = "admin"/' "$T/allow/promoted.cert"
grep -q 'role = "admin"' "$T/allow/promoted.cert" || fail "role not edited"
wait_for 5 sh -c "DROVER_CERT='$T/keys/promoted_secret' '$DROVER' pause parked >/dev/null 2>&1" \
    || fail "a key promoted to admin still may not pause"
as admin resume parked >/dev/null || fail "resume"

# SIGHUP: an edit that keeps the file's size, inode and times escapes the
# once-a-second check; SIGHUP applies it
f="$T/allow/limited.cert"
# One process rewrites it in place (same size) and puts the times back at
# once, so the periodic check cannot catch it half done
python3 - "$f" <<'PY' || fail "cannot edit $f in place"
import os, sys
path = sys.argv[1]
st = os.stat(path)
data = open(path, "rb").read().replace(b"billing", b"payroll")
assert len(data) == st.st_size
fd = os.open(path, os.O_WRONLY)
os.pwrite(fd, data, 0)
os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
os.close(fd)
PY
grep -q payroll "$f" || fail "queue list not edited"
sleep 1.5
as limited submit -q billing --data x --timeout 10 >/dev/null || fail "edit applied without SIGHUP"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q "SIGHUP" "$T/broker.log" || fail "SIGHUP not logged"
wait_for 5 sh -c "DROVER_CERT='$T/keys/limited_secret' '$DROVER' submit -q payroll --data x --timeout 5 >/dev/null 2>&1" \
    || fail "SIGHUP did not apply the new queue list"
as limited submit -q billing --data x --timeout 10 2>/dev/null >/dev/null
expect_eq "$?" "3" "the old queue after SIGHUP"
kill -0 "$BROKER_PID" || fail "broker died on SIGHUP"

# The honest client was served throughout
expect_eq "$(drover submit -q who --data x --wait --timeout 20)" "$P" "honest client at the end"

# --- Server secret readable by others -----------------------------------
chmod 640 "$T/keys/server_secret"
"$DROVERD" --producers tcp://127.0.0.1:0 --workers tcp://127.0.0.1:0 --no-metrics \
    --cert "$T/keys/server_secret" --allow "$T/allow" --data-dir "$T/open" \
    --durability none >"$T/open.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_for 10 sh -c "! kill -0 $pid 2>/dev/null" || fail "droverd started with a group-readable secret"
wait "$pid"
[ $? -ne 0 ] || fail "droverd exited 0 on a group-readable secret"
grep -q "chmod 600" "$T/open.log" || fail "no chmod advice: $(cat "$T/open.log")"
grep -q -- "--allow-open-key" "$T/open.log" || fail "no mention of --allow-open-key"
"$DROVERD" --producers tcp://127.0.0.1:0 --workers tcp://127.0.0.1:0 --no-metrics \
    --cert "$T/keys/server_secret" --allow "$T/allow" --data-dir "$T/open" \
    --durability none --allow-open-key >"$T/open2.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_for 10 grep -qs "serving clients" "$T/open2.log" || fail "--allow-open-key did not start"
grep -q "accepted because of --allow-open-key" "$T/open2.log" || fail "no warning with --allow-open-key"
kill -TERM "$pid"; wait "$pid"
chmod 600 "$T/keys/server_secret"

# --- Limits as flags -----------------------------------------------------
kill -TERM "$BROKER_PID"; wait "$BROKER_PID"
start_broker --no-metrics --durability none --max-payload 100 --max-queue-name 10 \
    --max-inflight 2 --max-workers 1
start_workers upper up 1 --exec 'tr a-z A-Z'
expect_eq "$(drover submit -q up --data ok --wait --timeout 20)" "OK" "honest client under limits"
drover submit -q up --data "$(head -c 101 /dev/zero | tr '\0' x)" --timeout 10 2>"$T/big.err" >/dev/null
expect_eq "$?" "1" "exit code for a payload over --max-payload"
grep -qi "large" "$T/big.err" || fail "no clear message: $(cat "$T/big.err")"
drover submit -q abcdefghijk --data x --timeout 10 2>"$T/name.err" >/dev/null
expect_eq "$?" "1" "exit code for a queue name over --max-queue-name"
grep -qi "queue" "$T/name.err" || fail "no clear message: $(cat "$T/name.err")"
grep -q "1-10 of" "$T/broker.log" || fail "queue name limit not in the broker's message"
as producer2 submit -q held --data 1 --timeout 10 >/dev/null || fail "in-flight 1"
as producer2 submit -q held --data 2 --timeout 10 >/dev/null || fail "in-flight 2"
as producer2 submit -q held --data 3 --timeout 10 2>"$T/inflight.err" >/dev/null
expect_eq "$?" "1" "exit code beyond --max-inflight"
grep -qiE "limit|unfinished" "$T/inflight.err" || fail "no clear message: $(cat "$T/inflight.err")"
grep "max_inflight" "$T/broker.log" | grep -qF -- "$(pubkey producer2)" || fail "in-flight refusal not logged with the key"
timeout 20 "$DROVER_WORKER" --broker "$WORKERS" --server-key "$T/keys/server" \
    --cert "$T/keys/admin_secret" --queue up --processes 0 --exec cat >"$T/second.log" 2>&1
[ $? -ne 0 ] || fail "a second worker was admitted beyond --max-workers 1"
grep -qi "maximum of 1 worker" "$T/second.log" "$T/broker.log" || fail "no clear message for --max-workers"
# The honest client is still served
expect_eq "$(drover submit -q up --data still --wait --timeout 20)" "STILL" "honest client after refusals"
pass "security daemon"
