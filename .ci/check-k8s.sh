#!/usr/bin/env bash
# Renders the Kubernetes manifests (k8s/base, k8s/overlays/local) and validates them
# offline: strict Kubernetes JSON schemas (kubernetes-validate, which ships them) plus
# pixpress's own rules (k8s/hack/check_manifests.py). Needs python3; installs
# kubernetes-validate from PyPI when missing. No cluster, no network beyond PyPI.
#
# Rendering: real kustomize when one is installed (`kustomize`, or `kubectl kustomize`),
# and always k8s/hack/kustomize_lite.py, a minimal renderer for machines without one;
# when both ran, their outputs must be identical, so the fallback cannot drift.
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

# KUSTOMIZE=none renders with kustomize_lite.py alone, as on a machine without one.
kustomize_cmd=()
if [[ "${KUSTOMIZE:-auto}" == none ]]; then
    :
elif command -v kustomize >/dev/null 2>&1; then
    kustomize_cmd=(kustomize build)
elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    kustomize_cmd=(kubectl kustomize)
fi

# render DIR OUT: the manifests of kustomization DIR into OUT.
render() {
    local dir="$1" out="$2"
    "$PYTHON" k8s/hack/kustomize_lite.py "$dir" >"$out.lite"
    if ((${#kustomize_cmd[@]})); then
        timeout 120 "${kustomize_cmd[@]}" "$dir" >"$out"
        if ! "$PYTHON" k8s/hack/check_manifests.py compare "$out" "$out.lite"; then
            echo "k8s/hack/kustomize_lite.py renders $dir differently from ${kustomize_cmd[*]}:" >&2
            echo "fix the renderer, or keep $dir to what it supports" >&2
            return 1
        fi
        echo "== $dir rendered with ${kustomize_cmd[*]} (kustomize_lite.py agrees)"
    else
        cp "$out.lite" "$out"
        echo "== $dir rendered with k8s/hack/kustomize_lite.py (no kustomize installed)"
    fi
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
