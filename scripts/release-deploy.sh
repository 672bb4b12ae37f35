#!/usr/bin/env bash
# Deploys one released image to a namespace, the way .github/workflows/release.yml does:
#
#   KUBECONFIG_B64=... scripts/release-deploy.sh staging|production IMAGE VERSION
#
# staging is namespace caloriesapp-staging, production caloriesapp. The image tag is set through
# kustomize (the images field of a throwaway overlay over k8s-example/base), never by editing
# the committed files, then applied and waited for; a rollout that does not finish in 5 minutes
# fails the job and is undone, so a broken release never stays half deployed.
set -euo pipefail

usage() {
    echo "usage: KUBECONFIG_B64=<base64 kubeconfig> $0 staging|production IMAGE VERSION" >&2
    exit 2
}
[ "$#" -eq 3 ] || usage
env_name="$1" image="$2" version="$3"
case "$env_name" in
    staging) namespace=caloriesapp-staging ;;
    production) namespace=caloriesapp ;;
    *) usage ;;
esac
case "$version" in
    '' | latest | *[!A-Za-z0-9._-]*)
        echo "release-deploy: VERSION '$version' must be an immutable tag such as 1.4.0" >&2
        exit 2
        ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -n "${KUBECONFIG_B64:-}" ]; then
    printf '%s' "$KUBECONFIG_B64" | base64 --decode >"$work/kubeconfig"
    chmod 600 "$work/kubeconfig"
    export KUBECONFIG="$work/kubeconfig"
fi

mkdir "$work/overlay"
cat >"$work/overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $namespace
resources:
  - $(realpath --relative-to="$work/overlay" "$root/k8s-example/base")
images:
  - name: registry.example.com/caloriesapp/calories-app
    newName: $image
    newTag: "$version"
YAML
kubectl kustomize "$work/overlay" >"$work/rendered.yaml"
grep -q "image: $image:$version\$" "$work/rendered.yaml" || {
    echo "release-deploy: the rendered manifests do not use $image:$version" >&2
    exit 1
}
echo "release-deploy: applying $image:$version to namespace $namespace"
kubectl apply -f "$work/rendered.yaml"
if ! kubectl -n "$namespace" rollout status deployment/backend-api --timeout=5m; then
    echo "release-deploy: the rollout did not finish: undoing it" >&2
    kubectl -n "$namespace" rollout undo deployment/backend-api
    exit 1
fi
echo "release-deploy: $image:$version is live in $namespace"
