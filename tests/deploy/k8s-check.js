#!/usr/bin/env node
//  k8s-check.js - checks the objects `kubectl kustomize` rendered from
//  deploy/k8s: each against its API schema (kubernetes-models, and its CRD
//  packages for KEDA and the Prometheus Operator), then the facts that hold
//  between objects and that no schema sees: selectors that select pods,
//  ports that exist, references to objects that exist, the hardening every
//  Drover pod must keep.
//
//  node k8s-check.js --modules DIR [options] RENDERED.yaml...
//    --modules DIR               where `npm install` put node_modules (its parent)
//    --allow-missing-secret NAME a Secret an overlay provides (rendering a base)
//    --adapter-values FILE       Prometheus adapter Helm values to check too
//    --require-kind KIND         fail unless the output holds such an object
//
//  Prints one line per problem and exits 1 if there was any, else prints a
//  summary and exits 0. Exit 2: bad usage or unreadable input.
'use strict';

const fs = require ('fs');
const path = require ('path');
const { createRequire } = require ('module');

function usage (why) {
    process.stderr.write ('k8s-check: ' + why + '\n');
    process.exit (2);
}

//  Command line
const opts = { modules: null, missingSecrets: new Set (), adapterValues: null,
               requireKinds: [], files: [] };
for (let i = 2; i < process.argv.length; i++) {
    const arg = process.argv [i];
    const value = () => {
        if (i + 1 >= process.argv.length)
            usage (arg + ' needs a value');
        return process.argv [++i];
    };
    if (arg === '--modules')
        opts.modules = value ();
    else if (arg === '--allow-missing-secret')
        opts.missingSecrets.add (value ());
    else if (arg === '--adapter-values')
        opts.adapterValues = value ();
    else if (arg === '--require-kind')
        opts.requireKinds.push (value ());
    else if (arg.startsWith ('--'))
        usage ('unknown option ' + arg);
    else
        opts.files.push (arg);
}
if (!opts.modules || opts.files.length === 0)
    usage ('usage: k8s-check.js --modules DIR [options] RENDERED.yaml...');

const load = createRequire (path.join (path.resolve (opts.modules), 'package.json'));
const yaml = load ('js-yaml');

//  apiVersion -> module exporting one model class per kind
const MODEL_MODULES = {
    'keda.sh/v1alpha1': '@kubernetes-models/keda/keda.sh/v1alpha1',
    'monitoring.coreos.com/v1': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
};

function modelFor (apiVersion, kind) {
    let name = MODEL_MODULES [apiVersion];
    if (!name)
        name = 'kubernetes-models/' + apiVersion;
    let module;
    try {
        module = load (name);
    }
    catch (e) {
        return null;
    }
    return module [kind] || null;
}

//  Problems, one line each
const problems = [];
function problem (obj, text) {
    const where = obj ? obj.kind + '/' + ((obj.metadata && obj.metadata.name) || '?') : '-';
    problems.push (where + ': ' + text);
}

//  Read every document of every file
const objects = [];
for (const file of opts.files) {
    let text;
    try {
        text = fs.readFileSync (file, 'utf8');
    }
    catch (e) {
        usage ('cannot read ' + file + ': ' + e.message);
    }
    let docs;
    try {
        docs = yaml.loadAll (text);
    }
    catch (e) {
        problems.push (file + ': not YAML: ' + e.message);
        continue;
    }
    for (const doc of docs)
        if (doc !== null && doc !== undefined)
            objects.push (doc);
}

//  kustomize wraps long base64 values of Secrets over several lines, which
//  the API server accepts (its decoder skips line breaks) but the schema's
//  "byte" format does not: join them before checking
for (const obj of objects)
    if (obj && obj.kind === 'Secret' && obj.data && typeof obj.data === 'object')
        for (const key of Object.keys (obj.data))
            if (typeof obj.data [key] === 'string')
                obj.data [key] = obj.data [key].replace (/[\r\n]/g, '');

//  1. Schemas
for (const obj of objects) {
    if (typeof obj !== 'object' || !obj.apiVersion || !obj.kind) {
        problem (null, 'an object without apiVersion or kind: ' + JSON.stringify (obj).slice (0, 80));
        continue;
    }
    if (!obj.metadata || !obj.metadata.name)
        problem (obj, 'no metadata.name');
    const Model = modelFor (obj.apiVersion, obj.kind);
    if (!Model) {
        problem (obj, 'unknown kind ' + obj.kind + ' in ' + obj.apiVersion);
        continue;
    }
    try {
        new Model (obj).validate ();
    }
    catch (e) {
        problem (obj, 'schema: ' + e.message);
    }
}

//  The schemas allow any extra field; a misspelt one is silently ignored by
//  the API server. These lists are the fields of the objects that matter
//  most here (Kubernetes 1.29); anything else in them is reported.
const KNOWN = {
    container: ['name', 'image', 'imagePullPolicy', 'command', 'args', 'workingDir', 'ports',
                'env', 'envFrom', 'resources', 'resizePolicy', 'restartPolicy', 'volumeMounts',
                'volumeDevices', 'livenessProbe', 'readinessProbe', 'startupProbe', 'lifecycle',
                'terminationMessagePath', 'terminationMessagePolicy', 'securityContext',
                'stdin', 'stdinOnce', 'tty'],
    probe: ['exec', 'httpGet', 'tcpSocket', 'grpc', 'initialDelaySeconds', 'timeoutSeconds',
            'periodSeconds', 'successThreshold', 'failureThreshold',
            'terminationGracePeriodSeconds'],
    securityContext: ['capabilities', 'privileged', 'seLinuxOptions', 'windowsOptions',
                      'runAsUser', 'runAsGroup', 'runAsNonRoot', 'readOnlyRootFilesystem',
                      'allowPrivilegeEscalation', 'procMount', 'seccompProfile', 'appArmorProfile'],
    resources: ['limits', 'requests', 'claims'],
    podSpec: ['activeDeadlineSeconds', 'affinity', 'automountServiceAccountToken', 'containers',
              'dnsConfig', 'dnsPolicy', 'enableServiceLinks', 'ephemeralContainers', 'hostAliases',
              'hostIPC', 'hostNetwork', 'hostPID', 'hostUsers', 'hostname', 'imagePullSecrets',
              'initContainers', 'nodeName', 'nodeSelector', 'os', 'overhead', 'preemptionPolicy',
              'priority', 'priorityClassName', 'readinessGates', 'resourceClaims', 'restartPolicy',
              'runtimeClassName', 'schedulerName', 'schedulingGates', 'securityContext',
              'serviceAccount', 'serviceAccountName', 'setHostnameAsFQDN', 'shareProcessNamespace',
              'subdomain', 'terminationGracePeriodSeconds', 'tolerations',
              'topologySpreadConstraints', 'volumes'],
    podSecurityContext: ['fsGroup', 'fsGroupChangePolicy', 'runAsGroup', 'runAsNonRoot', 'runAsUser',
                         'seLinuxOptions', 'seLinuxChangePolicy', 'seccompProfile',
                         'supplementalGroups', 'supplementalGroupsPolicy', 'sysctls',
                         'windowsOptions', 'appArmorProfile'],
};

function checkKnown (obj, what, value, kind) {
    if (!value || typeof value !== 'object')
        return;
    for (const key of Object.keys (value))
        if (!KNOWN [kind].includes (key))
            problem (obj, what + ': unknown field "' + key + '"');
}

//  Helpers over the rendered set
const byKind = (kind) => objects.filter ((o) => o && o.kind === kind);
const named = (kind, name) => byKind (kind).find ((o) => o.metadata && o.metadata.name === name);
const WORKLOADS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'ReplicaSet'];

function podTemplate (obj) {
    if (obj.kind === 'CronJob')
        return obj.spec && obj.spec.jobTemplate && obj.spec.jobTemplate.spec
            && obj.spec.jobTemplate.spec.template;
    return obj.spec && obj.spec.template;
}

const workloads = objects.filter ((o) => o && (WORKLOADS.includes (o.kind) || o.kind === 'CronJob'));

function labelsMatch (selector, labels) {
    if (!selector || Object.keys (selector).length === 0)
        return false;
    labels = labels || {};
    return Object.entries (selector).every (([k, v]) => labels [k] === v);
}

//  A LabelSelector (matchLabels and matchExpressions) against labels
function selectorMatches (selector, labels) {
    if (!selector)
        return false;
    labels = labels || {};
    const ml = selector.matchLabels || {};
    const exprs = selector.matchExpressions || [];
    if (Object.keys (ml).length === 0 && exprs.length === 0)
        return false;          //  an empty selector: never what Drover means
    if (!Object.entries (ml).every (([k, v]) => labels [k] === v))
        return false;
    return exprs.every ((e) => {
        const has = Object.prototype.hasOwnProperty.call (labels, e.key);
        switch (e.operator) {
            case 'In': return has && (e.values || []).includes (labels [e.key]);
            case 'NotIn': return !has || !(e.values || []).includes (labels [e.key]);
            case 'Exists': return has;
            case 'DoesNotExist': return !has;
            default: return false;
        }
    });
}

function podLabels (workload) {
    const t = podTemplate (workload);
    return (t && t.metadata && t.metadata.labels) || {};
}

function containersOf (workload) {
    const t = podTemplate (workload);
    const spec = (t && t.spec) || {};
    return (spec.initContainers || []).concat (spec.containers || []);
}

function portDeclared (container, port) {
    const ports = container.ports || [];
    if (typeof port === 'string')
        return ports.some ((p) => p.name === port);
    return ports.some ((p) => p.containerPort === port);
}

//  2. Pods: selectors, probes, volumes, references, hardening
for (const w of workloads) {
    const t = podTemplate (w);
    if (!t || !t.spec) {
        problem (w, 'no pod template');
        continue;
    }
    const spec = t.spec;
    if (w.kind !== 'Job' && w.kind !== 'CronJob') {
        const sel = w.spec.selector;
        if (!sel || !selectorMatches (sel, podLabels (w)))
            problem (w, 'spec.selector does not select its own pod template');
    }
    if (w.kind === 'StatefulSet') {
        const svc = named ('Service', w.spec.serviceName);
        if (!svc)
            problem (w, 'serviceName ' + w.spec.serviceName + ' names no Service');
        else {
            if (svc.spec.clusterIP !== 'None')
                problem (w, 'serviceName ' + w.spec.serviceName + ' is not a headless Service');
            if (!labelsMatch (svc.spec.selector, podLabels (w)))
                problem (w, 'its governing Service ' + w.spec.serviceName + ' does not select its pods');
        }
        const claims = (w.spec.volumeClaimTemplates || []).map ((c) => c.metadata.name);
        for (const c of containersOf (w))
            for (const m of c.volumeMounts || [])
                if (!(spec.volumes || []).some ((v) => v.name === m.name) && !claims.includes (m.name))
                    problem (w, 'container ' + c.name + ' mounts ' + m.name + ', which is no volume');
    }
    else {
        for (const c of containersOf (w))
            for (const m of c.volumeMounts || [])
                if (!(spec.volumes || []).some ((v) => v.name === m.name))
                    problem (w, 'container ' + c.name + ' mounts ' + m.name + ', which is no volume');
    }

    checkKnown (w, 'pod spec', spec, 'podSpec');
    checkKnown (w, 'pod securityContext', spec.securityContext, 'podSecurityContext');
    for (const host of ['hostNetwork', 'hostPID', 'hostIPC'])
        if (spec [host])
            problem (w, host + ' is on');

    //  ServiceAccount and its token
    const sa = spec.serviceAccountName;
    if (!sa || !named ('ServiceAccount', sa))
        problem (w, 'serviceAccountName ' + sa + ' names no ServiceAccount');
    if (spec.automountServiceAccountToken !== false)
        problem (w, 'automountServiceAccountToken is not false');

    //  Pod-level hardening
    const psc = spec.securityContext || {};
    if (psc.runAsNonRoot !== true)
        problem (w, 'pod securityContext.runAsNonRoot is not true');
    if (!psc.seccompProfile || psc.seccompProfile.type !== 'RuntimeDefault')
        problem (w, 'pod seccompProfile is not RuntimeDefault');
    if (typeof spec.terminationGracePeriodSeconds !== 'number' && w.kind !== 'Job')
        problem (w, 'no terminationGracePeriodSeconds');

    //  Referenced Secrets and ConfigMaps
    const needSecret = (name, why) => {
        if (!named ('Secret', name) && !opts.missingSecrets.has (name))
            problem (w, why + ' names Secret ' + name + ', which is not defined');
    };
    const needConfigMap = (name, why) => {
        if (!named ('ConfigMap', name))
            problem (w, why + ' names ConfigMap ' + name + ', which is not defined');
    };
    for (const v of spec.volumes || []) {
        if (v.secret && !v.secret.optional) {
            needSecret (v.secret.secretName, 'volume ' + v.name);
            const secret = named ('Secret', v.secret.secretName);
            for (const item of (secret && v.secret.items) || [])
                if (!Object.keys (Object.assign ({}, secret.data, secret.stringData)).includes (item.key))
                    problem (w, 'volume ' + v.name + ' wants key ' + item.key + ' of Secret '
                             + v.secret.secretName + ', which has no such key');
        }
        if (v.configMap && !v.configMap.optional)
            needConfigMap (v.configMap.name, 'volume ' + v.name);
    }
    for (const s of spec.imagePullSecrets || [])
        needSecret (s.name, 'imagePullSecrets');

    for (const c of containersOf (w)) {
        const what = 'container ' + c.name;
        checkKnown (w, what, c, 'container');
        checkKnown (w, what + ' securityContext', c.securityContext, 'securityContext');
        checkKnown (w, what + ' resources', c.resources, 'resources');
        for (const e of c.envFrom || []) {
            if (e.secretRef && !e.secretRef.optional)
                needSecret (e.secretRef.name, what + ' envFrom');
            if (e.configMapRef && !e.configMapRef.optional)
                needConfigMap (e.configMapRef.name, what + ' envFrom');
        }
        for (const e of c.env || []) {
            const from = e.valueFrom || {};
            if (from.secretKeyRef && !from.secretKeyRef.optional)
                needSecret (from.secretKeyRef.name, what + ' env ' + e.name);
            if (from.configMapKeyRef && !from.configMapKeyRef.optional)
                needConfigMap (from.configMapKeyRef.name, what + ' env ' + e.name);
        }
        //  Probes point at a port the container declares
        for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
            const probe = c [kind];
            if (!probe)
                continue;
            checkKnown (w, what + ' ' + kind, probe, 'probe');
            const action = probe.httpGet || probe.tcpSocket || probe.grpc;
            if (action && !portDeclared (c, action.port))
                problem (w, what + ' ' + kind + ' uses port ' + action.port
                         + ', which the container does not declare');
        }
        //  Container hardening and resources
        const sc = c.securityContext || {};
        if (sc.readOnlyRootFilesystem !== true)
            problem (w, what + ': readOnlyRootFilesystem is not true');
        if (sc.allowPrivilegeEscalation !== false)
            problem (w, what + ': allowPrivilegeEscalation is not false');
        if (sc.privileged)
            problem (w, what + ': privileged');
        const drop = (sc.capabilities && sc.capabilities.drop) || [];
        if (!drop.includes ('ALL'))
            problem (w, what + ': capabilities are not all dropped');
        if (sc.capabilities && (sc.capabilities.add || []).length)
            problem (w, what + ': adds capabilities ' + sc.capabilities.add.join (','));
        const res = c.resources || {};
        for (const r of ['cpu', 'memory']) {
            if (!res.requests || res.requests [r] === undefined)
                problem (w, what + ': no ' + r + ' request');
            if (!res.limits || res.limits [r] === undefined)
                problem (w, what + ': no ' + r + ' limit');
        }
    }
}

//  3. Services select pods, and their target ports exist there
for (const svc of byKind ('Service')) {
    const sel = svc.spec && svc.spec.selector;
    if (!sel || Object.keys (sel).length === 0) {
        problem (svc, 'no selector');
        continue;
    }
    const backends = workloads.filter ((w) => labelsMatch (sel, podLabels (w)));
    if (backends.length === 0) {
        problem (svc, 'selector ' + JSON.stringify (sel) + ' selects no pod');
        continue;
    }
    for (const p of svc.spec.ports || []) {
        const target = p.targetPort === undefined ? p.port : p.targetPort;
        for (const w of backends)
            if (!containersOf (w).some ((c) => portDeclared (c, target)))
                problem (svc, 'port ' + (p.name || p.port) + ' targets ' + target + ', which '
                         + w.kind + '/' + w.metadata.name + ' does not declare');
    }
}

//  4. Disruption budgets select pods
for (const pdb of byKind ('PodDisruptionBudget'))
    if (!workloads.some ((w) => selectorMatches (pdb.spec.selector, podLabels (w))))
        problem (pdb, 'selector selects no pod');

//  5. Autoscalers: targets exist, one autoscaler per target
function checkTarget (obj, ref) {
    if (!ref || !ref.name)
        return problem (obj, 'no scaleTargetRef');
    const kind = ref.kind || 'Deployment';
    const target = named (kind, ref.name);
    if (!target)
        return problem (obj, 'scaleTargetRef names ' + kind + '/' + ref.name + ', which is not defined');
    if (ref.apiVersion && ref.apiVersion !== target.apiVersion)
        problem (obj, 'scaleTargetRef apiVersion ' + ref.apiVersion + ' is not ' + target.apiVersion);
}

const scaled = new Map ();          //  "Kind/name" -> autoscalers
const scaleKey = (ref) => (ref.kind || 'Deployment') + '/' + ref.name;
for (const hpa of byKind ('HorizontalPodAutoscaler')) {
    checkTarget (hpa, hpa.spec.scaleTargetRef);
    const s = hpa.spec;
    if (s.minReplicas !== undefined && s.maxReplicas < s.minReplicas)
        problem (hpa, 'maxReplicas is below minReplicas');
    for (const m of s.metrics || [])
        if (m.type === 'External' && !(m.external && m.external.metric && m.external.metric.name))
            problem (hpa, 'an External metric without a name');
    if (s.scaleTargetRef)
        scaled.set (scaleKey (s.scaleTargetRef), (scaled.get (scaleKey (s.scaleTargetRef)) || []).concat ([hpa]));
}
for (const so of byKind ('ScaledObject')) {
    const s = so.spec;
    checkTarget (so, s.scaleTargetRef);
    if (s.minReplicaCount !== undefined && s.maxReplicaCount < s.minReplicaCount)
        problem (so, 'maxReplicaCount is below minReplicaCount');
    for (const t of s.triggers || []) {
        if (t.type === 'prometheus') {
            const md = t.metadata || {};
            for (const key of ['serverAddress', 'query', 'threshold'])
                if (!md [key])
                    problem (so, 'prometheus trigger without ' + key);
            if (md.query && !/\bdrover_[a-z_]+\b/.test (md.query))
                problem (so, 'prometheus trigger ' + (t.name || '') + ' queries no drover_ metric');
            if (md.threshold && !(Number (md.threshold) > 0))
                problem (so, 'prometheus trigger threshold ' + md.threshold + ' is not a positive number');
        }
    }
    if (!(s.triggers || []).some ((t) => t.type === 'prometheus' && t.metadata
                                   && /\bdrover_queue_depth\b/.test (t.metadata.query || '')))
        problem (so, 'no prometheus trigger on drover_queue_depth');
    if (!s.scaleTargetRef)
        continue;
    //  KEDA runs its own HPA; another one on the same target may exist only
    //  if it is the one KEDA was told to adopt
    const adopt = s.advanced && s.advanced.horizontalPodAutoscalerConfig
        && s.advanced.horizontalPodAutoscalerConfig.name;
    const transfer = so.metadata.annotations
        && so.metadata.annotations ['scaledobject.keda.sh/transfer-hpa-ownership'] === 'true';
    for (const hpa of scaled.get (scaleKey (s.scaleTargetRef)) || [])
        if (!(transfer && adopt === hpa.metadata.name))
            problem (so, 'HorizontalPodAutoscaler/' + hpa.metadata.name
                     + ' scales the same target and KEDA is not told to adopt it');
    scaled.set (scaleKey (s.scaleTargetRef), [so]);
}
for (const [target, scalers] of scaled)
    if (scalers.length > 1)
        problem (scalers [1], 'a second autoscaler for ' + target);

//  6. ServiceMonitors: exactly one Service, a port it has
for (const sm of byKind ('ServiceMonitor')) {
    const matches = byKind ('Service').filter ((svc) =>
        selectorMatches (sm.spec.selector, svc.metadata.labels));
    if (matches.length !== 1)
        problem (sm, 'selector matches ' + matches.length + ' Services, not 1 (each match is '
                 + 'scraped, and counted, separately)');
    for (const ep of sm.spec.endpoints || [])
        for (const svc of matches)
            if (!(svc.spec.ports || []).some ((p) => p.name === ep.port))
                problem (sm, 'endpoint port ' + ep.port + ' is not a port of Service/' + svc.metadata.name);
}

//  7. One namespace at most
const namespaces = new Set (objects.filter ((o) => o && o.metadata && o.metadata.namespace)
    .map ((o) => o.metadata.namespace));
if (namespaces.size > 1)
    problem (null, 'objects in several namespaces: ' + [...namespaces].join (', '));

//  8. Kinds that must be there
for (const kind of opts.requireKinds)
    if (byKind (kind).length === 0)
        problem (null, 'no ' + kind + ' in the output');

//  9. The Prometheus adapter's rules serve what the HPAs ask for
if (opts.adapterValues) {
    let values;
    try {
        values = yaml.load (fs.readFileSync (opts.adapterValues, 'utf8'));
    }
    catch (e) {
        usage ('cannot read ' + opts.adapterValues + ': ' + e.message);
    }
    const rules = (values && values.rules && values.rules.external) || [];
    if (!Array.isArray (rules) || rules.length === 0)
        problems.push (opts.adapterValues + ': no rules.external list');
    const served = new Set ();
    rules.forEach ((rule, i) => {
        const where = opts.adapterValues + ': rules.external[' + i + ']';
        if (typeof rule.seriesQuery !== 'string' || !rule.seriesQuery)
            problems.push (where + ': no seriesQuery');
        if (typeof rule.metricsQuery !== 'string'
        || !rule.metricsQuery.includes ('<<.Series>>') || !rule.metricsQuery.includes ('<<.LabelMatchers>>'))
            problems.push (where + ': metricsQuery must use <<.Series>> and <<.LabelMatchers>>');
        const as = rule.name && (rule.name.as || rule.name.matches);
        if (!as)
            problems.push (where + ': no name');
        else
            served.add (as);
        const overrides = (rule.resources && rule.resources.overrides) || {};
        for (const [label, target] of Object.entries (overrides))
            if (!target || typeof target.resource !== 'string')
                problems.push (where + ': override of ' + label + ' names no resource');
    });
    const wanted = [];
    for (const hpa of byKind ('HorizontalPodAutoscaler'))
        for (const m of hpa.spec.metrics || [])
            if (m.type === 'External' && m.external && m.external.metric)
                wanted.push ([hpa, m.external.metric.name]);
    if (wanted.length === 0)
        problems.push (opts.adapterValues + ': no HPA asks for an external metric');
    for (const [hpa, name] of wanted)
        if (!served.has (name))
            problem (hpa, 'external metric ' + name + ' is served by no adapter rule');
}

//  Report
if (problems.length) {
    for (const p of problems)
        process.stdout.write ('FAIL ' + p + '\n');
    process.stdout.write (problems.length + ' problem(s) in ' + opts.files.join (' ') + '\n');
    process.exit (1);
}
const kinds = {};
for (const o of objects)
    kinds [o.kind] = (kinds [o.kind] || 0) + 1;
process.stdout.write ('ok ' + objects.length + ' objects ('
    + Object.entries (kinds).map (([k, n]) => n + ' ' + k).join (', ') + ') in '
    + opts.files.join (' ') + '\n');
