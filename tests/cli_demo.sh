#!/usr/bin/env bash
# `drover demo` on a small range: exits 0 when the parallel count matches the
# serial one, prints every phase, and leaves no process or file behind.
#
# usage: cli_demo.sh PATH_TO_DROVER
set -u
DROVER=${1:?usage: cli_demo.sh PATH_TO_DROVER}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/drover-cli-demo.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0
fail () {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

TMPDIR="$TMP" "$DROVER" demo --n 300000 --chunks 16 --processes 2 --timeout 60 \
    >"$TMP/out" 2>"$TMP/err"
code=$?
cat "$TMP/out"
[ "$code" = 0 ] || fail "demo exited $code; stderr: $(tail -c 600 "$TMP/err")"
for phase in setup serial parallel speed-up check; do
    grep -Eq "^  $phase " "$TMP/out" || fail "demo printed no '$phase' line"
done
# pi(300000) = 25997, computed independently of the demo's code.
grep -q 'check     OK: both phases counted 25997 primes below 300000' "$TMP/out" \
    || fail "demo's count is not 25997"
leftover=$(find "$TMP" -mindepth 1 -maxdepth 1 -name 'drover-demo-*')
[ -z "$leftover" ] || fail "demo left $leftover behind"
if pgrep -f "$TMP/drover-demo-" >/dev/null; then
    fail "demo workers outlived the demo: $(pgrep -af "$TMP/drover-demo-")"
fi

if [ "$failures" -ne 0 ]; then
    echo "cli_demo: $failures failure(s)" >&2
    exit 1
fi
echo "cli_demo: all checks passed"
