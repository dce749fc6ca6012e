#!/usr/bin/env bash
# The broker's Prometheus page checked by an independent parser: test_prom
# writes a page that uses every feature of broker/prom.c (escaped label
# values, invalid UTF-8, NaN and infinities, histograms), and the
# reference Python client's parser must read it back with the same values.
#
# Usage: tests/ci/metrics_format.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac

# Debian's own Python, where the Debian package lands (a python3 earlier
# in PATH may be another installation)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import prometheus_client' 2>/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd=sudo
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-prometheus-client </dev/null
fi
if [ ! -x "$BUILD/tests/test_prom" ]; then
    cmake -S . -B "$BUILD" >/dev/null
    cmake --build "$BUILD" -j "$(nproc)" --target test_prom >/dev/null
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$BUILD/tests/test_prom" --dump "$TMP/page.txt"

"$PY" - "$TMP/page.txt" <<'PY'
import math, sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
families = {f.name: f for f in text_string_to_metric_families(text)}
fail = []

def expect(cond, what):
    if not cond:
        fail.append(what)

sub = families.get("drover_jobs_submitted")
expect(sub is not None and sub.type == "counter", "counter family")
expect(sub.documentation == "Jobs accepted, by queue.\nSecond line \\ here.", "help unescaped: %r" % sub.documentation)
values = {s.labels["queue"]: s.value for s in sub.samples if s.name.endswith("_total")}
expect(values.get("upper") == 1234, "plain sample")
expect(values.get('a\\b"c\nd') == 9007199254740991, "escaped label value: %r" % values)
expect(values.get("bad\ufffdutf8") == 0, "invalid UTF-8 replaced")

workers = families.get("drover_workers")
expect(workers.type == "gauge" and workers.samples[0].value == 3, "gauge")

ratio = {s.labels["kind"]: s.value for s in families["drover_ratio"].samples}
expect(ratio["third"] == 1.0 / 3.0, "1/3 exact")
expect(math.isnan(ratio["nan"]), "NaN")
expect(ratio["inf"] == math.inf, "+Inf")
expect(ratio["tiny"] == -1e-300, "-1e-300")

run = families["drover_job_run_seconds"]
expect(run.type == "histogram", "histogram type")
buckets = [(s.labels["le"], s.value) for s in run.samples if s.name.endswith("_bucket")]
expect(buckets[-1] == ("+Inf", 1000), "+Inf bucket holds everything: %r" % (buckets[-1],))
counts = [v for _, v in buckets]
expect(counts == sorted(counts), "cumulative")
bounds = [float(le) for le, _ in buckets]
expect(bounds == sorted(bounds) and bounds[0] == 0.001 and bounds[-2] == 600, "job bounds")
expect(all(s.labels["queue"] == "upper" for s in run.samples), "labels on every histogram line")
count = [s.value for s in run.samples if s.name.endswith("_count")]
total = [s.value for s in run.samples if s.name.endswith("_sum")]
expect(count == [1000] and abs(total[0] - sum(i * 0.7 for i in range(1000))) < 1e-6, "count and sum")

fsync = families["drover_journal_fsync_seconds"]
fb = [(float(s.labels["le"]), s.value) for s in fsync.samples if s.name.endswith("_bucket")]
expect(fb[0] == (0.00005, 0) and (0.0005, 1) in fb, "fsync buckets: %r" % fb[:5])

if fail:
    print("metrics format: FAILED:", *fail, sep="\n  ")
    sys.exit(1)
print("metrics format: %d families, %d samples parsed back as written"
      % (len(families), sum(len(f.samples) for f in families.values())))
PY
