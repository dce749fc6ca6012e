#!/usr/bin/env bash
# systemd.sh - checks the units in deploy/systemd with systemd's own tools:
#
#  - `systemd-analyze verify` on droverd.service and on an instance of
#    drover-worker@.service, their ExecStart pointed at the binaries just
#    built; any line it prints (unknown directive, bad value, missing
#    binary...) fails the test, not only its exit status;
#  - the same on a deliberately broken copy must complain, or the check
#    proves nothing;
#  - `systemd-analyze security --offline=true`: the exposure level of each
#    unit is printed and must stay at or below MAX_EXPOSURE;
#  - the hardening directives the units promise are present;
#  - the sysusers.d and tmpfiles.d snippets applied to an empty root make
#    the drover user and /etc/drover, and droverd accepts the config file
#    tmpfiles writes (droverd --config FILE --print-config).
#
# Environment: DROVERD, DROVER_WORKER (the built binaries), DEPLOY_DIR
# (deploy/systemd). Exits 77 (skipped) when systemd-analyze is missing.
set -u

: "${DROVERD:?DROVERD must name the droverd binary}"
: "${DROVER_WORKER:?DROVER_WORKER must name the drover-worker binary}"
DEPLOY_DIR=${DEPLOY_DIR:-$(cd "$(dirname "$0")/../../deploy/systemd" && pwd)}
# Exposure is 0.0 (locked down) to 10.0; the units measure about 1.1 and 1.2
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}

if ! command -v systemd-analyze >/dev/null; then
    echo "skip: systemd-analyze not found (Debian package systemd)"
    exit 77
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/drover-systemd.XXXXXX")
trap 'rm -rf "$T"' EXIT
failures=0

fail () {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# Copies a unit with the installed binary paths replaced by the built ones
install_unit () {
    sed -e "s#/usr/local/bin/droverd#$DROVERD#g" \
        -e "s#/usr/local/bin/drover-worker#$DROVER_WORKER#g" \
        "$DEPLOY_DIR/$1" > "$T/$2"
}

install_unit droverd.service droverd.service
install_unit drover-worker@.service drover-worker@.service
# verify wants a unit it can load: an instance of the template
install_unit drover-worker@.service drover-worker@example.service
grep -q "ExecStart=$DROVERD " "$T/droverd.service" || fail "droverd.service: ExecStart not rewritten"
grep -q "ExecStart=$DROVER_WORKER " "$T/drover-worker@example.service" \
    || fail "drover-worker@.service: ExecStart not rewritten"

# verify: silent and successful, or it failed
verify () {
    local unit=$1 out rc
    out=$(cd "$T" && systemd-analyze verify --man=no "./$unit" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
        printf '%s\n' "$out"
        return 1
    fi
    return 0
}

for unit in droverd.service drover-worker@example.service; do
    if verify "$unit"; then
        echo "ok - systemd-analyze verify $unit: no warnings"
    else
        fail "systemd-analyze verify $unit complained (above)"
    fi
done

# The same check on a broken copy: a misspelt directive and a missing binary
sed -e 's/^NoNewPrivileges=yes/NoNewPrivilege=yes/' \
    -e "s#ExecStart=$DROVERD#ExecStart=$T/no-such-droverd#" \
    "$T/droverd.service" > "$T/broken.service"
if out=$(verify broken.service); then
    fail "systemd-analyze verify accepted a broken unit"
else
    grep -q "NoNewPrivilege" <<<"$out" || fail "verify did not name the misspelt directive: $out"
    grep -q "no-such-droverd" <<<"$out" || fail "verify did not name the missing binary: $out"
    echo "ok - systemd-analyze verify rejects a broken copy ($(wc -l <<<"$out") complaints)"
fi

# Exposure levels
for unit in droverd.service drover-worker@example.service; do
    out=$(cd "$T" && systemd-analyze security --offline=true --no-pager "./$unit" 2>&1)
    level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
    if [ -z "$level" ]; then
        printf '%s\n' "$out" | tail -5
        fail "$unit: no exposure level from systemd-analyze security"
        continue
    fi
    echo "exposure $unit: $level (at most $MAX_EXPOSURE allowed)"
    if awk -v a="$level" -v b="$MAX_EXPOSURE" 'BEGIN { exit !(a > b) }'; then
        printf '%s\n' "$out" | grep '✗'
        fail "$unit: exposure $level is above $MAX_EXPOSURE"
    fi
done

# Directives both units must keep
for unit in droverd.service drover-worker@.service; do
    for directive in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
                     PrivateDevices=yes User=drover 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
                     CapabilityBoundingSet= SystemCallFilter=@system-service KillSignal=SIGTERM \
                     Restart=on-failure; do
        grep -qx "$directive" "$DEPLOY_DIR/$unit" || fail "$unit lacks $directive"
    done
done
grep -qx 'StateDirectory=drover' "$DEPLOY_DIR/droverd.service" || fail "droverd.service lacks StateDirectory=drover"
grep -qx 'KillMode=mixed' "$DEPLOY_DIR/drover-worker@.service" \
    || fail "drover-worker@.service must signal only the supervisor (KillMode=mixed) so jobs drain"
grep -q -- '--config /etc/drover/worker-%i.conf' "$DEPLOY_DIR/drover-worker@.service" \
    || fail "drover-worker@.service does not read /etc/drover/worker-%i.conf"
# The stop timeouts cover the drain: the broker's default job timeout
# (300 s) bounds a worker's drain
stop=$(sed -n 's/^TimeoutStopSec=//p' "$DEPLOY_DIR/drover-worker@.service")
job_timeout=$("$DROVERD" --print-config 2>/dev/null | sed -n 's/^job-timeout = //p')
if [ -z "$stop" ] || [ -z "$job_timeout" ] || [ "$stop" -le "$job_timeout" ]; then
    fail "drover-worker@.service TimeoutStopSec=$stop does not exceed the job timeout ($job_timeout s)"
else
    echo "ok - worker stop timeout ${stop}s covers the ${job_timeout}s job timeout"
fi

# sysusers.d and tmpfiles.d on an empty root
root="$T/root"
mkdir -p "$root/etc" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d"
cp "$DEPLOY_DIR/drover.sysusers.conf" "$root/usr/lib/sysusers.d/drover.conf"
cp "$DEPLOY_DIR/drover.tmpfiles.conf" "$root/usr/lib/tmpfiles.d/drover.conf"
if command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null && [ "$(id -u)" = 0 ]; then
    out=$(systemd-sysusers --root="$root" 2>&1) || fail "systemd-sysusers: $out"
    grep -q '^drover:x:[0-9]*:[0-9]*:.*:/var/lib/drover:' "$root/etc/passwd" \
        || fail "sysusers.d snippet made no drover user"
    out=$(systemd-tmpfiles --root="$root" --create drover.conf 2>&1) || fail "systemd-tmpfiles: $out"
    gid=$(sed -n 's/^drover:x:\([0-9]*\):.*/\1/p' "$root/etc/group")
    [ "$(stat -c '%a %g' "$root/etc/drover")" = "750 $gid" ] || fail "/etc/drover is not 0750 root:drover"
    [ -d "$root/etc/drover/allow" ] || fail "tmpfiles.d made no /etc/drover/allow"
    if out=$("$DROVERD" --config "$root/etc/drover/droverd.conf" --print-config 2>&1) \
       && grep -qx 'allow = /etc/drover/allow' <<<"$out"; then
        echo "ok - sysusers.d and tmpfiles.d snippets make the user, /etc/drover and a droverd.conf droverd accepts"
    else
        fail "droverd does not accept the droverd.conf tmpfiles writes: $out"
    fi
else
    echo "note: sysusers/tmpfiles check skipped (needs root and systemd-sysusers, systemd-tmpfiles)"
fi

if [ $failures -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "ok - systemd units"
