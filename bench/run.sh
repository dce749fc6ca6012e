#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] - run `drover bench` and record the figures.
#
# Builds the tree if needed (BUILD_DIR defaults to ./build next to this
# directory's parent), runs `drover bench --json` with default parameters
# three times with CURVE and once with --insecure, and appends a dated
# section to bench/RESULTS.md: the exact commands, the machine, and a table
# of every figure. Also prints that section. Exit 0 when every run
# succeeded, 1 otherwise (the section is written either way).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${1:-$ROOT/build}
RESULTS=$HERE/RESULTS.md
RUNS=${DROVER_BENCH_RUNS:-3}

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
    run "curve$i" "$DROVER" bench --json
done
run plain "$DROVER" bench --insecure --json

# Machine facts
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu" ] || cpu=$(uname -m)
zmq=$(pkg-config --modversion libzmq 2>/dev/null || echo unknown)
czmq=$(pkg-config --modversion libczmq 2>/dev/null || echo unknown)
sodium=$(pkg-config --modversion libsodium 2>/dev/null || echo unknown)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit + uncommitted changes"
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt")
load=$(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null)

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
    echo "Drover $commit, $build_type build. Parameters: the defaults (200000 jobs,"
    echo "window 10000, 2000 latency jobs, 100000 queued jobs, 64-byte payloads,"
    echo "2 worker processes with concurrency 1 and prefetch 100; raw floor window"
    echo "100, batch 1)."
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
    echo "Issue target (Drover's pipelined throughput at least half the raw floor,"
    echo "CURVE, same settings): **$verdict** (median ratio $(fmt %.2f "$ratio"))."
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
