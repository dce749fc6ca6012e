#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] - run `drover bench` and record the figures.
#
# Builds the tree if needed (BUILD_DIR defaults to ./build next to this
# directory's parent), runs `drover bench --json` with default parameters
# (durable and in-memory brokers side by side) three times with CURVE, each
# also pushing a million jobs through a durable broker for the journal-size
# figure, and once with --insecure (no journal phase), and appends a dated
# section to bench/RESULTS.md: the exact commands, the machine, the
# filesystem the journal was on, and tables of every figure (including the
# shared-state and lock phase: SET throughput with one replica, propagation
# latency, lock + unlock pairs per second). Also prints
# that section. Exit 0 when every run succeeded, 1 otherwise (the section is
# written either way).
#
# Environment: DROVER_BENCH_RUNS (CURVE runs, default 3),
# DROVER_BENCH_JOURNAL_JOBS (default 1000000), TMPDIR (where drover bench
# puts the brokers' data directories; default /tmp).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${1:-$ROOT/build}
RESULTS=$HERE/RESULTS.md
RUNS=${DROVER_BENCH_RUNS:-3}
JOURNAL_JOBS=${DROVER_BENCH_JOURNAL_JOBS:-1000000}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" || exit 1
fi
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null || {
    echo "run.sh: the build failed; run 'cmake --build $BUILD' to see why" >&2
    exit 1
}
BUILD=$(cd "$BUILD" && pwd)
DROVER=$BUILD/cli/drover
for program in "$DROVER" "$BUILD/broker/droverd" "$BUILD/bench/raw_floor"; do
    [ -x "$program" ] || { echo "run.sh: $program was not built" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/drover-bench-run.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# field FILE NAME: the value of "NAME": in a JSON line ("" when absent)
field () {
    sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"
}
# fmt FORMAT VALUE: printf for numbers, "n/a" for null or empty
fmt () {
    case "$2" in
        ""|null) printf 'n/a' ;;
        *) LC_ALL=C printf "$1" "$2" ;;
    esac
}
# median of the arguments that are numbers
median () {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print "null";
                 else if (NR % 2) print v[(NR + 1) / 2];
                 else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# What is measured: the tree's commit, read before the runs (the tree may
# move while they run), and where BUILD was configured from.
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit + uncommitted changes"
fi
source_dir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")
if [ -n "$source_dir" ] && [ "$(cd "$source_dir" 2>/dev/null && pwd)" != "$ROOT" ]; then
    commit="built from $source_dir (not this tree, which is at $commit)"
fi

failed=0
commands=()
run () {                     # run NAME ARGS...: one bench, JSON in $TMP/NAME.json
    local name=$1
    shift
    commands+=("$*")
    echo "run.sh: $*" >&2
    "$@" >"$TMP/$name.json" 2>"$TMP/$name.err"
    local code=$?
    if [ "$code" != 0 ] || ! grep -q '"ok":true' "$TMP/$name.json"; then
        echo "run.sh: $name exited $code: $(tail -c 400 "$TMP/$name.err")" >&2
        failed=$((failed + 1))
        echo "$code" >"$TMP/$name.code"
    fi
}

for i in $(seq 1 "$RUNS"); do
    run "curve$i" "$DROVER" bench --journal-jobs "$JOURNAL_JOBS" --json
done
run plain "$DROVER" bench --insecure --journal-jobs 0 --json

# Machine facts
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu" ] || cpu=$(uname -m)
zmq=$(pkg-config --modversion libzmq 2>/dev/null || echo unknown)
czmq=$(pkg-config --modversion libczmq 2>/dev/null || echo unknown)
sodium=$(pkg-config --modversion libsodium 2>/dev/null || echo unknown)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt")
load=$(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null)
bench_tmp=${TMPDIR:-/tmp}
fs_type=$(findmnt -n -o FSTYPE -T "$bench_tmp" 2>/dev/null || df -PT "$bench_tmp" 2>/dev/null | awk 'NR == 2 { print $2 }')
fs_device=$(df -P "$bench_tmp" 2>/dev/null | awk 'NR == 2 { print $1 }')

row () {                     # row LABEL FILE
    local f=$2
    if [ -f "$TMP/$(basename "$f" .json).code" ]; then
        echo "| $1 | failed (exit $(cat "$TMP/$(basename "$f" .json).code")) | | | | | | |"
        return
    fi
    echo "| $1 | $(fmt %.0f "$(field "$f" jobs_per_s)") | $(fmt %.0f "$(field "$f" raw_floor_jobs_per_s)") \
| $(fmt %.2f "$(field "$f" ratio_to_floor)") | $(fmt %.3f "$(field "$f" latency_p50_ms)") \
| $(fmt %.3f "$(field "$f" latency_p99_ms)") | $(fmt %.0f "$(field "$f" broker_bytes_per_queued_job)") \
| $(fmt %.2f "$(field "$f" cpu_broker_s)") / $(fmt %.2f "$(field "$f" cpu_workers_s)") / $(fmt %.2f "$(field "$f" cpu_producer_s)") |"
}

# failed_row LABEL FILE COLUMNS: "failed" for a run that did not succeed
failed_row () {
    local code
    code=$TMP/$(basename "$2" .json).code
    [ -f "$code" ] || return 1
    printf '| %s | failed (exit %s) |' "$1" "$(cat "$code")"
    printf '%*s' "$3" '' | sed 's/ / |/g'
    echo
}

durable_row () {             # durable_row LABEL FILE
    local f=$2
    failed_row "$1" "$f" 6 && return
    echo "| $1 | $(fmt %.0f "$(field "$f" durable_jobs_per_s)") | $(fmt %.0f "$(field "$f" inmem_jobs_per_s)") \
| $(fmt %.2f "$(field "$f" durable_to_inmem_ratio)") | $(fmt %.3f "$(field "$f" durable_latency_p50_ms)") \
| $(fmt %.3f "$(field "$f" durable_latency_p99_ms)") | $(fmt %.3f "$(field "$f" inmem_latency_p99_ms)") \
| $(fmt %.2f "$(field "$f" durable_cpu_broker_s)") / $(fmt %.2f "$(field "$f" inmem_cpu_broker_s)") |"
}

mib () {                     # mib VALUE: bytes as MiB with one decimal
    case "$1" in
        ""|null) printf 'n/a' ;;
        *) awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }' ;;
    esac
}

state_row () {               # state_row LABEL FILE
    local f=$2
    failed_row "$1" "$f" 5 && return
    echo "| $1 | $(fmt %.0f "$(field "$f" state_set_per_s)") | $(fmt %.1f "$(field "$f" state_replica_catchup_ms)") \
| $(fmt %.3f "$(field "$f" state_propagation_p50_ms)") | $(fmt %.3f "$(field "$f" state_propagation_p99_ms)") \
| $(fmt %.0f "$(field "$f" state_propagation_missed)") | $(fmt %.0f "$(field "$f" lock_pairs_per_s)") |"
}

journal_row () {             # journal_row LABEL FILE
    local f=$2
    failed_row "$1" "$f" 4 && return
    echo "| $1 | $(fmt %.0f "$(field "$f" journal_run_jobs_per_s)") | $(mib "$(field "$f" journal_peak_bytes)") \
| $(mib "$(field "$f" journal_end_bytes)") | $(mib "$(field "$f" journal_idle_bytes)") \
| $(fmt %.0f "$(field "$f" journal_compactions)") |"
}

collect () {                 # collect NAME: that field over the CURVE runs
    local values=()
    for i in $(seq 1 "$RUNS"); do
        [ -f "$TMP/curve$i.code" ] || values+=("$(field "$TMP/curve$i.json" "$1")")
    done
    median "${values[@]}"
}

section=$TMP/section.md
{
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)"
    echo
    echo "Machine: $(nproc) CPUs ($cpu), Linux $(uname -r), libzmq $zmq, CZMQ $czmq,"
    echo "libsodium $sodium; load average before the runs $load."
    echo "Journal and temporary files on $bench_tmp: $fs_type ($fs_device)."
    echo "Drover $commit, $build_type build. Parameters: the defaults (200000 jobs,"
    echo "window 10000, 2000 latency jobs, 100000 queued jobs, 64-byte payloads,"
    echo "2 worker processes with concurrency 1 and prefetch 100; raw floor window"
    echo "100, batch 1; durable and in-memory brokers), and $JOURNAL_JOBS jobs"
    echo "through the journal in the CURVE runs."
    echo
    echo "Commands:"
    echo
    echo '```'
    echo "bench/run.sh ${1:-}" | sed "s/ $//"
    for c in "${commands[@]}"; do
        echo "${c/#$ROOT\//}"
    done
    echo '```'
    echo
    echo "In-memory broker (\`--durability none\`) against the raw floor, as in earlier"
    echo "sections:"
    echo
    echo "| run | Drover jobs/s | raw floor jobs/s | Drover / floor | p50 ms | p99 ms | broker bytes per queued job | CPU s broker / workers / producer |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    for i in $(seq 1 "$RUNS"); do
        row "CURVE, run $i" "$TMP/curve$i.json"
    done
    echo "| **CURVE, median** | **$(fmt %.0f "$(collect jobs_per_s)")** | **$(fmt %.0f "$(collect raw_floor_jobs_per_s)")** \
| **$(fmt %.2f "$(collect ratio_to_floor)")** | **$(fmt %.3f "$(collect latency_p50_ms)")** \
| **$(fmt %.3f "$(collect latency_p99_ms)")** | **$(fmt %.0f "$(collect broker_bytes_per_queued_job)")** | |"
    row "plaintext (--insecure; floor without CURVE)" "$TMP/plain.json"
    echo
    ratio=$(collect ratio_to_floor)
    verdict="not measured"
    if [ "$ratio" != null ]; then
        if awk -v r="$ratio" 'BEGIN { exit !(r >= 0.5) }'; then verdict="met"; else verdict="NOT met"; fi
    fi
    echo "Target (Drover's pipelined throughput at least half the raw floor,"
    echo "CURVE, same settings): **$verdict** (median ratio $(fmt %.2f "$ratio"))."
    echo
    echo "Durable broker (\`--durability fsync\`: journal, one fdatasync per loop turn)"
    echo "beside the in-memory one, same run:"
    echo
    echo "| run | durable jobs/s | in-memory jobs/s | durable / in-memory | durable p50 ms | durable p99 ms | in-memory p99 ms | CPU s broker durable / in-memory |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    for i in $(seq 1 "$RUNS"); do
        durable_row "CURVE, run $i" "$TMP/curve$i.json"
    done
    echo "| **CURVE, median** | **$(fmt %.0f "$(collect durable_jobs_per_s)")** | **$(fmt %.0f "$(collect inmem_jobs_per_s)")** \
| **$(fmt %.2f "$(collect durable_to_inmem_ratio)")** | **$(fmt %.3f "$(collect durable_latency_p50_ms)")** \
| **$(fmt %.3f "$(collect durable_latency_p99_ms)")** | **$(fmt %.3f "$(collect inmem_latency_p99_ms)")** | |"
    durable_row "plaintext (--insecure)" "$TMP/plain.json"
    echo
    dratio=$(collect durable_to_inmem_ratio)
    dverdict="not measured"
    if [ "$dratio" != null ]; then
        if awk -v r="$dratio" 'BEGIN { exit !(r >= 1 / 3) }'; then dverdict="met"; else dverdict="NOT met"; fi
    fi
    echo "Target (durable throughput at least a third of in-memory, thanks to"
    echo "group commit): **$dverdict** (median ratio $(fmt %.2f "$dratio"))."
    echo
    echo "Journal size: $JOURNAL_JOBS jobs through a fresh durable broker with"
    echo "\`--result-ttl 1\`, window 10000; DATA_DIR/journal sampled every 200 ms:"
    echo
    echo "| run | jobs/s over the run | peak MiB | at the last result MiB | after 3 s idle MiB | compactions |"
    echo "|---|---:|---:|---:|---:|---:|"
    for i in $(seq 1 "$RUNS"); do
        journal_row "CURVE, run $i" "$TMP/curve$i.json"
    done
    echo "| **CURVE, median** | **$(fmt %.0f "$(collect journal_run_jobs_per_s)")** | **$(mib "$(collect journal_peak_bytes)")** \
| **$(mib "$(collect journal_end_bytes)")** | **$(mib "$(collect journal_idle_bytes)")** | **$(fmt %.0f "$(collect journal_compactions)")** |"
    echo
    echo "Shared state and locks: a fresh broker (durable), no workers; one replica"
    echo "(drover_replica_track + watch) on namespace \"bench\" in the bench process;"
    echo "$(field "$TMP/curve1.json" state_sets) SETs of 64 bytes over 1000 keys from $(field "$TMP/curve1.json" state_writers) writer threads sharing one"
    echo "client, the replica then checked to hold every last value; $(field "$TMP/curve1.json" state_propagation_sets)"
    echo "sequential SETs for propagation (send time in the value, replica callback"
    echo "takes now - sent, same clock); lock + unlock on one name, one client, for"
    echo "up to $(field "$TMP/curve1.json" lock_pairs) pairs or 2 s:"
    echo
    echo "| run | state SETs/s | replica equal after last reply ms | propagation p50 ms | propagation p99 ms | propagation updates not seen | lock pairs/s |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for i in $(seq 1 "$RUNS"); do
        state_row "CURVE, run $i" "$TMP/curve$i.json"
    done
    echo "| **CURVE, median** | **$(fmt %.0f "$(collect state_set_per_s)")** | **$(fmt %.1f "$(collect state_replica_catchup_ms)")** \
| **$(fmt %.3f "$(collect state_propagation_p50_ms)")** | **$(fmt %.3f "$(collect state_propagation_p99_ms)")** \
| **$(fmt %.0f "$(collect state_propagation_missed)")** | **$(fmt %.0f "$(collect lock_pairs_per_s)")** |"
    state_row "plaintext (--insecure)" "$TMP/plain.json"
    lock_note=$(sed -n 's/.*"lock_note":"\([^"]*\)".*/\1/p' "$TMP/curve1.json")
    if [ -n "$lock_note" ]; then
        echo
        echo "Lock figure: $lock_note."
    fi
    echo
    echo "Context:"
    echo
    echo "- raw floor, CURVE, batch 10: $(fmt %.0f "$(collect raw_floor_batch10_jobs_per_s)") jobs/s (median)"
    echo "- raw floor, no CURVE, batch 1: $(fmt %.0f "$(collect raw_floor_plain_jobs_per_s)") jobs/s (median, from the CURVE runs)"
    echo "- raw floor, no CURVE, batch 10: $(fmt %.0f "$(field "$TMP/plain.json" raw_floor_batch10_jobs_per_s)") jobs/s (plaintext run)"
    echo "- broker RSS after the throughput phase, finished jobs kept for their result"
    echo "  TTL: $(fmt %.0f "$(collect broker_rss_after_throughput_kb)") kB (median)"
    if [ "$failed" != 0 ]; then
        echo
        echo "$failed run(s) failed; their rows say so."
    fi
} >"$section"

if [ ! -f "$RESULTS" ]; then
    printf '# Drover benchmark results\n\nRecorded by bench/run.sh.\n' >"$RESULTS"
fi
cat "$section" >>"$RESULTS"
cat "$section"
echo
echo "run.sh: appended to $RESULTS"
[ "$failed" = 0 ]
