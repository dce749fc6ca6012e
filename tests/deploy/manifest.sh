# manifest.sh - reads settings out of deploy/k8s/base without kubectl;
# sourced by the deploy tests. BASE names the directory.

# literals GENERATOR: the literals of one configMapGenerator entry of the
# kustomization, one KEY=VALUE per line
literals () {
    awk -v want="$1" '
        /^- name: / { name = $3; inlit = 0; next }
        /^  literals:/ { inlit = (name == want); next }
        /^  [a-zA-Z]/ { inlit = 0 }
        inlit && /^  - [A-Z_]+=/ { sub (/^  - /, ""); print }
    ' "$BASE/kustomization.yaml"
}

# worker_args: the container args of the workers' Deployment, one per line
worker_args () {
    awk '
        /^        args:/ { inargs = 1; next }
        inargs && /^        - / { sub (/^        - /, ""); print; next }
        inargs { inargs = 0 }
    ' "$BASE/worker-deployment.yaml"
}
