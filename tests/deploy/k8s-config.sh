#!/usr/bin/env bash
# k8s-config.sh - the settings the Kubernetes manifests give the programs
# are settings the programs accept: the DROVER_* variables of the broker's
# and the workers' ConfigMaps (deploy/k8s/base/kustomization.yaml) and the
# workers' arguments (worker-deployment.yaml) are fed to the built droverd
# and drover-worker with --print-config, which exits 2 on any unknown
# variable or bad value. Also: the example plugin the workers load has the
# file name the build produces, the ports the manifests declare are the
# broker's defaults, and the workers' grace period covers the broker's job
# timeout. Needs no cluster and no kubectl.
#
# Environment: DROVERD, DROVER_WORKER, DROVER_PLUGIN (built files).
set -u

: "${DROVERD:?DROVERD must name the droverd binary}"
: "${DROVER_WORKER:?DROVER_WORKER must name the drover-worker binary}"
: "${DROVER_PLUGIN:?DROVER_PLUGIN must name the example plugin}"
BASE=${BASE:-$(cd "$(dirname "$0")/../../deploy/k8s/base" && pwd)}

failures=0
fail () {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

. "$(dirname "$0")/manifest.sh"

mapfile -t broker_env < <(literals drover-broker-env)
mapfile -t worker_env < <(literals drover-worker-env)
mapfile -t args < <(worker_args)
[ ${#broker_env[@]} -ge 3 ] || fail "found only ${#broker_env[@]} broker variables in $BASE/kustomization.yaml"
[ ${#worker_env[@]} -ge 3 ] || fail "found only ${#worker_env[@]} worker variables in $BASE/kustomization.yaml"
[ ${#args[@]} -ge 2 ] || fail "found no worker args in $BASE/worker-deployment.yaml"

# The broker: every variable accepted, and each one took effect
before=$failures
if out=$(env -i PATH="$PATH" "${broker_env[@]}" "$DROVERD" --print-config 2>&1); then
    for pair in "${broker_env[@]}"; do
        name=${pair%%=*}
        value=${pair#*=}
        [ "$name" = DROVER_SERVER_CERT ] && key=cert \
            || key=$(tr 'A-Z_' 'a-z-' <<<"${name#DROVER_}")
        grep -qxF "$key = $value" <<<"$out" || fail "droverd: $name=$value did not set $key"
    done
    [ $failures = "$before" ] && echo "ok - droverd accepts the ${#broker_env[@]} variables of drover-broker-env"
else
    fail "droverd refuses the manifests' environment: $out"
fi
# The state endpoint, when not set, is the producers' port + 2
producers_port=$(sed -n 's/^producers = .*:\([0-9]*\)$/\1/p' <<<"$out")
grep -q '^# state = (not set)' <<<"$out" && out="$out
state = tcp://*:$((producers_port + 2))"
for port in 5555 5556 5557 9090; do
    grep -q ":$port\$" <<<"$out" || fail "droverd's settings have no endpoint on port $port"
    grep -q "containerPort: $port\$" "$BASE/broker-statefulset.yaml" \
        || fail "broker-statefulset.yaml declares no containerPort $port"
done

# The workers
before=$failures
if out=$(env -i PATH="$PATH" "${worker_env[@]}" "$DROVER_WORKER" "${args[@]}" --print-config 2>&1); then
    for pair in "${worker_env[@]}"; do
        name=${pair%%=*}
        value=${pair#*=}
        key=$(tr 'A-Z_' 'a-z-' <<<"${name#DROVER_}")
        [ "$name" = DROVER_SERVER_KEY ] && key=server-key
        grep -qxF "$key = $value" <<<"$out" || fail "drover-worker: $name=$value did not set $key"
    done
    [ $failures = "$before" ] && echo "ok - drover-worker accepts drover-worker-env and the Deployment's args (${args[*]})"
else
    fail "drover-worker refuses the manifests' settings: $out"
fi
plugin=$(sed -n 's/^plugin = //p' <<<"$out")
if [ -n "$plugin" ]; then
    file=${plugin%:*}
    [ "$(basename "$file")" = "$(basename "$DROVER_PLUGIN")" ] \
        || fail "workers load $file, but the build makes $(basename "$DROVER_PLUGIN")"
    symbol=${plugin##*:}
    nm -D --defined-only "$DROVER_PLUGIN" 2>/dev/null | grep -qw "$symbol" \
        || fail "the example plugin has no symbol $symbol"
fi

# The workers' grace period covers a drain: the broker's job timeout
grace=$(sed -n 's/^      terminationGracePeriodSeconds: //p' "$BASE/worker-deployment.yaml")
timeout=""
for pair in "${broker_env[@]}"; do
    [ "${pair%%=*}" = DROVER_JOB_TIMEOUT ] && timeout=${pair#*=}
done
[ -n "$timeout" ] || timeout=$("$DROVERD" --print-config | sed -n 's/^job-timeout = //p')
if [ -z "$grace" ] || [ "$grace" -le "$timeout" ]; then
    fail "workers' terminationGracePeriodSeconds ($grace) does not exceed the job timeout ($timeout)"
else
    echo "ok - workers' grace period ${grace}s covers the ${timeout}s job timeout"
fi

if [ $failures -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "ok - Kubernetes settings"
