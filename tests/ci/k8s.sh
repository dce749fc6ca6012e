#!/usr/bin/env bash
# k8s.sh - checks deploy/k8s without a cluster:
#
#  1. renders every kustomization (base, autoscaling, the Prometheus
#     adapter variant, and the example overlay with freshly made keys) with
#     `kubectl kustomize`: the kubectl found on the machine, and Debian's
#     kubernetes-client (an old kustomize) unpacked from its package, so the
#     files stay readable by both;
#  2. checks every rendered object with tests/deploy/k8s-check.js: its
#     schema (kubernetes-models, and the KEDA and Prometheus Operator model
#     packages for the custom resources), then the facts between objects
#     (selectors select pods, probes and Service ports name declared
#     container ports, autoscalers name their Deployment, referenced Secrets
#     exist, the ServiceMonitor scrapes one Service, the adapter serves the
#     HPA's external metric) and the pods' hardening;
#  3. proves the checks bite: 13 deliberately broken copies must each
#     fail, with the expected complaint;
#  4. runs tests/deploy/systemd.sh on the built binaries, installing
#     systemd first if systemd-analyze is missing.
#
# Installs what it lacks (kubectl via Debian's kubernetes-client, nodejs and
# npm, the npm packages into a temporary directory). Run from anywhere;
# BUILD names the build directory (default: build, as `make test` uses).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
T=$(mktemp -d "${TMPDIR:-/tmp}/drover-k8s.XXXXXX")
trap 'rm -rf "$T"' EXIT
START=$(date +%s)
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
apt_updated=0

say () { echo "[k8s $(($(date +%s) - START))s] $*"; }

apt_install () {
    if [ $apt_updated = 0 ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ---- tools ----
if ! command -v kubectl >/dev/null; then
    say "installing kubectl (Debian kubernetes-client)"
    apt_install kubernetes-client
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing nodejs and npm"
    apt_install nodejs npm
fi
RENDERERS=("$(command -v kubectl)")
# Debian's kubectl too, unpacked beside the other, unless it is the one above
if ! kubectl version --client 2>/dev/null | grep -q 'v1\.20\.'; then
    mkdir -p "$T/deb"
    fetch_deb () { (cd "$T/deb" && apt-get download kubernetes-client >/dev/null 2>&1); }
    if ! fetch_deb && [ $apt_updated = 0 ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt_updated=1
        fetch_deb || true
    fi
    if ls "$T"/deb/kubernetes-client_*.deb >/dev/null 2>&1 \
       && dpkg -x "$T"/deb/kubernetes-client_*.deb "$T/deb/root" \
       && [ -x "$T/deb/root/usr/bin/kubectl" ]; then
        RENDERERS+=("$T/deb/root/usr/bin/kubectl")
    else
        say "note: could not unpack Debian's kubernetes-client; rendering with one kubectl only"
    fi
fi
for k in "${RENDERERS[@]}"; do
    say "renderer $k: $("$k" version --client 2>/dev/null | head -1)"
done
say "node $(node --version), npm $(npm --version)"

say "npm install (kubernetes-models and CRD models) into a temporary directory"
mkdir -p "$T/npm"
cp "$ROOT/tests/deploy/package.json" "$T/npm/"
(cd "$T/npm" && npm install --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null)
CHECK=(node "$ROOT/tests/deploy/k8s-check.js" --modules "$T/npm")

# ---- a working copy of deploy/k8s with keys for the example overlay ----
make_tree () {
    rm -rf "$1"
    mkdir -p "$1"
    cp -r "$ROOT/deploy/k8s/." "$1/"
    local keys="$1/overlays/example/keys" k
    if [ -n "${DROVER_CLI:-}" ]; then
        (cd "$keys" && "$DROVER_CLI" keygen server >/dev/null \
            && "$DROVER_CLI" keygen worker --role worker >/dev/null \
            && "$DROVER_CLI" keygen producer --role producer >/dev/null \
            && "$DROVER_CLI" keygen admin --role admin >/dev/null)
    else
        for k in server worker producer admin; do
            echo "placeholder public certificate $k" > "$keys/$k"
            echo "placeholder secret certificate $k" > "$keys/${k}_secret"
        done
    fi
}
DROVER_CLI=""
for candidate in "${DROVER:-}" "$BUILD/cli/drover"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
        DROVER_CLI=$candidate
        break
    fi
done
make_tree "$T/tree"
if [ -n "$DROVER_CLI" ]; then
    say "example keys made with $DROVER_CLI keygen"
else
    say "note: no built drover found; the example overlay gets placeholder key files"
fi

MISSING=(--allow-missing-secret drover-broker --allow-missing-secret drover-allow
         --allow-missing-secret drover-worker)
CORE=(--require-kind StatefulSet --require-kind Deployment --require-kind Service
      --require-kind PodDisruptionBudget --require-kind ServiceAccount)

# check_dir TREE DIR RENDERER OUT CHECK-OPTIONS...: render, then check
check_dir () {
    local tree=$1 dir=$2 renderer=$3 out=$4
    shift 4
    if ! "$renderer" kustomize "$tree/$dir" > "$out" 2> "$out.err"; then
        echo "kubectl kustomize $dir failed:"
        cat "$out.err"
        return 3
    fi
    "${CHECK[@]}" "$@" "$out"
}

# ---- 1 and 2: every kustomization, every renderer ----
n=0
for renderer in "${RENDERERS[@]}"; do
    n=$((n + 1))
    say "rendering with renderer $n"
    check_dir "$T/tree" base "$renderer" "$T/base-$n.yaml" \
        "${MISSING[@]}" "${CORE[@]}" --require-kind HorizontalPodAutoscaler
    check_dir "$T/tree" autoscaling "$renderer" "$T/keda-$n.yaml" \
        "${MISSING[@]}" "${CORE[@]}" --require-kind ScaledObject --require-kind ServiceMonitor
    check_dir "$T/tree" autoscaling/prometheus-adapter "$renderer" "$T/adapter-$n.yaml" \
        "${MISSING[@]}" "${CORE[@]}" --require-kind HorizontalPodAutoscaler \
        --require-kind ServiceMonitor \
        --adapter-values "$T/tree/autoscaling/prometheus-adapter/values.yaml"
    check_dir "$T/tree" overlays/example "$renderer" "$T/example-$n.yaml" \
        "${CORE[@]}" --require-kind Secret --require-kind Namespace --require-kind Job
    # Deprecation notices of newer kustomize versions are expected; anything
    # else they print is shown
    cat "$T"/*-"$n".yaml.err | grep -v "is deprecated" | sort -u || true
done
# The renderers agree on the objects (names and kinds) they produce; the
# hash suffixes of generated names differ between kustomize versions
objects_of () {
    grep -E '^(kind|  name):' "$1" | paste - - \
        | sed -E '/^kind: (ConfigMap|Secret)\t/ s/-[a-z0-9]{10}$//' | sort
}
if [ ${#RENDERERS[@]} -gt 1 ]; then
    for d in base keda adapter example; do
        a=$(objects_of "$T/$d-1.yaml")
        b=$(objects_of "$T/$d-2.yaml")
        if [ "$a" != "$b" ]; then
            changes=$(diff <(echo "$a") <(echo "$b") | grep '^[<>]' || true)
            echo "$changes"
            # The old kustomize ignores `$patch: delete` on HPAs: KEDA adopts
            # that HPA instead (see autoscaling/keda-scaledobject.yaml)
            if [ "$d" = keda ] && [ "$(printf '%s\n' "$changes" | wc -l)" = 1 ] \
               && [[ "$changes" == "> kind: HorizontalPodAutoscaler"* ]]; then
                say "renderers differ on $d only by the HPA the old kustomize keeps (expected)"
            else
                echo "FAIL: the renderers produce different objects for $d"
                exit 1
            fi
        fi
    done
    say "renderers agree on the objects of every kustomization (but for the expected HPA)"
fi

# ---- 3: broken copies must fail ----
# mutate NAME FILE SED-SCRIPT DIR EXPECTED [CHECK-OPTIONS...]
caught=0
mutate () {
    local name=$1 file=$2 script=$3 dir=$4 expected=$5
    shift 5
    local tree="$T/broken" out rc
    make_tree "$tree"
    if [ ! -f "$tree/$file" ]; then
        # A new file: the script is its contents; list it in the base
        printf '%s\n' "$script" > "$tree/$file"
        sed -i "s/^- serviceaccount.yaml\$/- serviceaccount.yaml\n- $(basename "$file")/" \
            "$tree/base/kustomization.yaml"
    else
        sed -i -e "$script" "$tree/$file"
        if cmp -s "$tree/$file" "$ROOT/deploy/k8s/$file"; then
            echo "FAIL: mutation '$name' changed nothing in $file"
            exit 1
        fi
    fi
    set +e
    out=$(check_dir "$tree" "$dir" "${RENDERERS[0]}" "$T/broken.yaml" "$@" 2>&1)
    rc=$?
    set -e
    if [ $rc -ne 1 ] || ! grep -qF -- "$expected" <<<"$out"; then
        echo "FAIL: broken copy '$name' was not caught as expected (exit $rc, wanted a line with '$expected'):"
        echo "$out"
        exit 1
    fi
    caught=$((caught + 1))
    echo "  caught: $name -> $(grep -F -- "$expected" <<<"$out" | head -1)"
}

say "broken copies (each must fail)"
mutate "Service selector selects nothing" base/broker-services.yaml \
    '/^  selector:/,/^  ports:/ s/component: broker/component: brokr/' \
    base "selects no pod" "${MISSING[@]}"
mutate "Deployment without selector" base/worker-deployment.yaml \
    '/^  selector:/,/^  strategy:/{/^  strategy:/!d}' \
    base "must have required property selector" "${MISSING[@]}"
mutate "string where an integer is required" base/broker-statefulset.yaml \
    's/^  replicas: 1$/  replicas: "1"/' \
    base "replicas must be integer" "${MISSING[@]}"
mutate "probe on an undeclared port" base/broker-statefulset.yaml \
    '/readinessProbe:/,/periodSeconds/ s/port: http$/port: metrics/' \
    base "readinessProbe uses port metrics, which the container does not declare" "${MISSING[@]}"
mutate "misspelt probe field" base/broker-statefulset.yaml \
    's/^        livenessProbe:/        livenesProbe:/' \
    base 'unknown field "livenesProbe"' "${MISSING[@]}"
mutate "misspelt grace period" base/worker-deployment.yaml \
    's/terminationGracePeriodSeconds: 330/terminationGracePeriodSecond: 330/' \
    base 'pod spec: unknown field "terminationGracePeriodSecond"' "${MISSING[@]}"
mutate "HPA scaling a Deployment that does not exist" base/worker-hpa.yaml \
    '/scaleTargetRef:/,/name:/ s/name: drover-worker$/name: drover-workers/' \
    base "scaleTargetRef names Deployment/drover-workers" "${MISSING[@]}"
mutate "writable root file system" base/worker-deployment.yaml \
    's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' \
    base "readOnlyRootFilesystem is not true" "${MISSING[@]}"
mutate "Secret that is never made" base/worker-deployment.yaml \
    's/secretName: drover-worker$/secretName: drover-workr/' \
    overlays/example "names Secret drover-workr, which is not defined"
mutate "unknown kind" base/frobnicator.yaml \
    "$(printf 'apiVersion: drover.example/v1\nkind: Frobnicator\nmetadata:\n  name: x')" \
    base "unknown kind Frobnicator" "${MISSING[@]}"
mutate "ScaledObject with a string replica count" autoscaling/keda-scaledobject.yaml \
    's/^  minReplicaCount: 1$/  minReplicaCount: "1"/' \
    autoscaling "minReplicaCount must be integer" "${MISSING[@]}"
mutate "ServiceMonitor scraping both Services" autoscaling/monitoring/servicemonitor.yaml \
    '/^      drover-service: client$/d' \
    autoscaling "selector matches 2 Services" "${MISSING[@]}"
mutate "adapter serving another metric name" autoscaling/prometheus-adapter/values.yaml \
    's/as: drover_queue_depth/as: drover_depth/' \
    autoscaling/prometheus-adapter "external metric drover_queue_depth is served by no adapter rule" \
    "${MISSING[@]}" --adapter-values "$T/broken/autoscaling/prometheus-adapter/values.yaml"
say "$caught broken copies caught"

# ---- 4: systemd units ----
if [ -x "$BUILD/broker/droverd" ] && [ -x "$BUILD/workers/drover-worker" ]; then
    if ! command -v systemd-analyze >/dev/null; then
        say "installing systemd (for systemd-analyze)"
        apt_install systemd
    fi
    say "systemd units"
    DROVERD="$BUILD/broker/droverd" DROVER_WORKER="$BUILD/workers/drover-worker" \
        DEPLOY_DIR="$ROOT/deploy/systemd" bash "$ROOT/tests/deploy/systemd.sh"
else
    say "note: no build in $BUILD; systemd units not checked here (ctest deploy_systemd does)"
fi

say "done: every kustomization valid with ${#RENDERERS[@]} renderer(s), $caught broken copies caught"
