#!/usr/bin/env bash
# `drover bench` with tiny parameters: exits 0, prints one line of sane JSON
# (every figure present and plausible: durable beside in-memory, journal
# size, shared-state SET throughput, propagation latency, lock pairs), the
# human table works too (plaintext run, one durability mode), --skip-state
# skips the state phase, bad usage exits 2, and nothing is left behind
# (processes, files).
#
# usage: bench_smoke.sh PATH_TO_DROVER [PATH_TO_RAW_FLOOR]
set -u
DROVER=${1:?usage: bench_smoke.sh PATH_TO_DROVER [PATH_TO_RAW_FLOOR]}
RAW=${2:-}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/drover-bench-smoke.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0
fail () {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# field NAME: the raw value of "NAME": in $TMP/out (number, null, true, ...)
field () {
    sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$TMP/out"
}
# positive NAME: the field is a number > 0
positive () {
    local value
    value=$(field "$1")
    awk -v v="$value" 'BEGIN { exit !(v ~ /^[0-9]+(\.[0-9]+)?$/ && v + 0 > 0) }' \
        || fail "$1 is '$value', not a positive number"
}

# ---- JSON, CURVE, with the raw floor when we have it ---------------------------
raw_args=(--skip-raw)
[ -n "$RAW" ] && raw_args=(--raw "$RAW")
TMPDIR="$TMP" "$DROVER" bench --jobs 3000 --window 500 --latency-jobs 50 \
    --memory-jobs 3000 --journal-jobs 3000 --state-sets 600 --state-writers 4 \
    --state-latency-sets 60 --lock-pairs 100 --json "${raw_args[@]}" >"$TMP/out" 2>"$TMP/err"
code=$?
cat "$TMP/out"
[ "$code" = 0 ] || fail "bench --json exited $code; stderr: $(tail -c 600 "$TMP/err")"
lines=$(wc -l <"$TMP/out")
[ "$lines" = 1 ] || fail "bench --json printed $lines lines, not 1"
grep -q '^{"name":"drover_bench",.*}$' "$TMP/out" || fail "output is not one JSON object"
if command -v python3 >/dev/null; then
    python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/out" \
        || fail "output does not parse as JSON"
fi
[ "$(field ok)" = true ] || fail "ok is not true"
[ "$(field curve)" = true ] || fail "curve is not true"
[ "$(field jobs)" = 3000 ] || fail "jobs is not 3000"
[ "$(field durability)" = '"both"' ] || fail "durability is not \"both\""
[ "$(field primary)" = '"inmem"' ] || fail "primary is not \"inmem\""
for name in seconds jobs_per_s latency_p50_ms latency_p99_ms broker_rss_before_kb \
            broker_rss_after_kb broker_bytes_per_queued_job \
            inmem_jobs_per_s inmem_latency_p50_ms inmem_latency_p99_ms \
            durable_jobs_per_s durable_latency_p50_ms durable_latency_p99_ms \
            durable_to_inmem_ratio journal_seconds journal_run_jobs_per_s \
            journal_end_bytes journal_peak_bytes journal_idle_bytes journal_samples; do
    positive "$name"
done
[ "$(field jobs_per_s)" = "$(field inmem_jobs_per_s)" ] || fail "jobs_per_s is not in-memory's"
[ "$(field journal_jobs)" = 3000 ] || fail "journal_jobs is not 3000"
awk -v a="$(field durable_latency_p50_ms)" -v b="$(field durable_latency_p99_ms)" \
    'BEGIN { exit !(a <= b) }' || fail "durable p50 above p99"
# 3000 jobs of 64 bytes leave some journal, and not more than 1 MB per job.
awk -v e="$(field journal_end_bytes)" -v p="$(field journal_peak_bytes)" \
    'BEGIN { exit !(e >= 3000 * 64 && p >= e && p < 3000 * 1048576) }' \
    || fail "journal sizes end $(field journal_end_bytes), peak $(field journal_peak_bytes) are not plausible"
awk -v a="$(field latency_p50_ms)" -v b="$(field latency_p99_ms)" 'BEGIN { exit !(a <= b) }' \
    || fail "p50 above p99"
# 3000 queued 64-byte jobs cannot take less than 64 bytes each, nor 1 MB each.
awk -v v="$(field broker_bytes_per_queued_job)" 'BEGIN { exit !(v >= 64 && v < 1048576) }' \
    || fail "broker_bytes_per_queued_job $(field broker_bytes_per_queued_job) is not plausible"
# Shared state: durable broker by default, every key checked in the replica,
# most propagation samples seen (a replica resync folds some), p50 <= p99
# and both under 10 s.
[ "$(field state_sets)" = 600 ] || fail "state_sets is not 600"
[ "$(field state_writers)" = 4 ] || fail "state_writers is not 4"
[ "$(field state_durable)" = true ] || fail "state_durable is not true"
for name in state_seconds state_set_per_s state_propagation_p50_ms state_propagation_p99_ms; do
    positive "$name"
done
[ "$(field state_replica_keys_checked)" = 1000 ] \
    || fail "state_replica_keys_checked is '$(field state_replica_keys_checked)', not 1000"
awk -v v="$(field state_propagation_missed)" 'BEGIN { exit !(v ~ /^[0-9]+$/ && v < 30) }' \
    || fail "state_propagation_missed is '$(field state_propagation_missed)', not 0..29"
awk -v a="$(field state_propagation_p50_ms)" -v b="$(field state_propagation_p99_ms)" \
    'BEGIN { exit !(a <= b && b < 10000) }' || fail "state propagation p50/p99 not plausible"
# 600 SETs cannot take less than a millisecond, nor a minute.
awk -v v="$(field state_seconds)" 'BEGIN { exit !(v > 0.001 && v < 60) }' \
    || fail "state_seconds $(field state_seconds) is not plausible"
# Locks: 100 pairs asked for, at most 2 s, so 1..100 done.
positive lock_pairs_per_s
awk -v v="$(field lock_pairs_done)" 'BEGIN { exit !(v >= 1 && v <= 100) }' \
    || fail "lock_pairs_done $(field lock_pairs_done) is not 1..100"
grep -q '"lock_note":""' "$TMP/out" || fail "lock_note is not empty"
if [ -n "$RAW" ]; then
    for name in raw_floor_jobs_per_s ratio_to_floor raw_floor_batch10_jobs_per_s \
                raw_floor_plain_jobs_per_s; do
        positive "$name"
    done
else
    [ "$(field raw_floor_jobs_per_s)" = null ] || fail "skipped floor is not null"
fi

# ---- human table, plaintext ---------------------------------------------------
TMPDIR="$TMP" "$DROVER" bench --insecure --durability fsync --jobs 1000 --window 200 \
    --latency-jobs 20 --memory-jobs 500 --journal-jobs 0 --skip-raw --state-sets 200 \
    --state-writers 2 --state-latency-sets 20 --lock-pairs 20 >"$TMP/out" 2>"$TMP/err"
code=$?
cat "$TMP/out"
[ "$code" = 0 ] || fail "bench --insecure exited $code; stderr: $(tail -c 600 "$TMP/err")"
for what in 'pipelined throughput, durable (fsync)' 'latency, one job at a time, durable (fsync)' \
            'broker memory per queued job' 'state SET throughput, 1 replica' \
            'state propagation, SET to replica callback'; do
    grep -q "^  $what  *[0-9p]" "$TMP/out" || fail "table has no '$what' figure"
done
grep -q 'pipelined throughput, in memory' "$TMP/out" && fail "--durability fsync ran in memory too"
grep -q 'journal size' "$TMP/out" && fail "--journal-jobs 0 did not skip the journal phase"
grep -q 'plaintext' "$TMP/out" || fail "table does not say plaintext"
grep -q '^  lock acquire/release ' "$TMP/out" || fail "table has no lock line"

# ---- --skip-state ----------------------------------------------------------------
TMPDIR="$TMP" "$DROVER" bench --durability none --jobs 200 --window 100 --latency-jobs 0 \
    --memory-jobs 0 --journal-jobs 0 --skip-raw --skip-state --json >"$TMP/out" 2>"$TMP/err"
code=$?
[ "$code" = 0 ] || fail "bench --skip-state exited $code; stderr: $(tail -c 600 "$TMP/err")"
[ "$(field state_sets)" = 0 ] || fail "--skip-state: state_sets is not 0"
[ "$(field state_set_per_s)" = null ] || fail "--skip-state: state_set_per_s is not null"
[ "$(field lock_pairs_per_s)" = null ] || fail "--skip-state: lock_pairs_per_s is not null"

# ---- usage -----------------------------------------------------------------------
"$DROVER" bench --jobs 0 >/dev/null 2>"$TMP/err"
[ $? = 2 ] || fail "bench --jobs 0 did not exit 2"
"$DROVER" bench --durability sometimes >/dev/null 2>"$TMP/err"
[ $? = 2 ] || fail "bench --durability sometimes did not exit 2"
"$DROVER" bench --state-writers 0 >/dev/null 2>"$TMP/err"
[ $? = 2 ] || fail "bench --state-writers 0 did not exit 2"
"$DROVER" bench --frobnicate >/dev/null 2>"$TMP/err"
[ $? = 2 ] || fail "bench --frobnicate did not exit 2"
"$DROVER" bench --help >"$TMP/out" 2>&1 && grep -q 'Usage: drover bench' "$TMP/out" \
    || fail "bench --help"

# ---- nothing left behind ----------------------------------------------------------
leftover=$(find "$TMP" -mindepth 1 -maxdepth 1 -name 'drover-bench-*')
[ -z "$leftover" ] || fail "bench left $leftover behind"
sleep 0.2
if pgrep -f "$TMP/drover-bench-" >/dev/null; then
    fail "bench processes outlived the bench: $(pgrep -af "$TMP/drover-bench-")"
fi

if [ "$failures" -ne 0 ]; then
    echo "bench_smoke: $failures failure(s)" >&2
    exit 1
fi
echo "bench_smoke: all checks passed"
