#!/usr/bin/env bash
# Deploys the calories app to the cluster of the current kubectl context and waits until it runs.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: k8s-example/deploy.sh ENV [--secrets-env FILE]

  ENV                 production: k8s-example (MySQL is a managed database, see README.md)
                      test:       k8s-example/test (adds a single-replica MySQL in the cluster)
  --secrets-env FILE  create or update the backend-secrets Secret from FILE, KEY=value lines
                      with the keys of secrets.yaml.example, before deploying. Without it the
                      Secret must exist already.

Environment: ROLLOUT_TIMEOUT (default 10m), how long to wait for each rollout.
USAGE
}

namespace=caloriesapp
here="$(cd "$(dirname "$0")" && pwd)"
timeout="${ROLLOUT_TIMEOUT:-10m}"

env_name=""
secrets_env=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        --secrets-env)
            if [ "$#" -lt 2 ]; then
                echo "error: --secrets-env needs a file" >&2
                exit 2
            fi
            secrets_env="$2"
            shift 2
            ;;
        -*)
            echo "error: unknown option $1" >&2
            usage >&2
            exit 2
            ;;
        *)
            if [ -n "$env_name" ]; then
                echo "error: one ENV only (got \"$env_name\" and \"$1\")" >&2
                exit 2
            fi
            env_name="$1"
            shift
            ;;
    esac
done

# The keys the pods read from backend-secrets (secretKeyRef): a missing one would leave a pod in
# CreateContainerConfigError, so check them up front.
required_keys=(DATABASE_URL CACHE_URL RATE_LIMIT_URL JWT_SECRET REDIS_PASSWORD)
case "$env_name" in
    production)
        kustomization="$here"
        ;;
    test)
        kustomization="$here/test"
        required_keys+=(MYSQL_PASSWORD MYSQL_ROOT_PASSWORD)
        ;;
    *)
        usage >&2
        exit 2
        ;;
esac

if ! command -v kubectl >/dev/null 2>&1; then
    echo "error: kubectl not found (1.30 or later; it has kustomize built in)" >&2
    exit 1
fi
echo "==> deploying $env_name to context \"$(kubectl config current-context)\", namespace $namespace"

secret_changed=no
if [ -n "$secrets_env" ]; then
    if [ ! -r "$secrets_env" ]; then
        echo "error: cannot read $secrets_env" >&2
        exit 1
    fi
    echo "==> Secret backend-secrets from $secrets_env"
    # The namespace must exist before its Secret; the kustomization applies the same object.
    kubectl apply -f "$here/base/namespace.yaml"
    # Rendered locally and applied, so that a second run updates the Secret instead of failing.
    result="$(kubectl create secret generic backend-secrets --namespace "$namespace" \
        --from-env-file="$secrets_env" --dry-run=client --output yaml | kubectl apply -f -)"
    echo "$result"
    case "$result" in
        *configured*) secret_changed=yes ;;
    esac
elif ! kubectl get secret backend-secrets --namespace "$namespace" >/dev/null 2>&1; then
    echo "error: no Secret backend-secrets in namespace $namespace." >&2
    echo "Create it from k8s-example/secrets.yaml.example, or pass --secrets-env FILE." >&2
    exit 1
fi
for key in "${required_keys[@]}"; do
    value="$(kubectl get secret backend-secrets --namespace "$namespace" \
        --output "jsonpath={.data.$key}")"
    if [ -z "$value" ]; then
        echo "error: Secret backend-secrets has no $key (see k8s-example/secrets.yaml.example)" >&2
        exit 1
    fi
done

echo "==> kubectl apply -k $kustomization"
kubectl apply -k "$kustomization"

if [ "$secret_changed" = yes ]; then
    # Pods read the Secret as environment variables at start only.
    echo "==> the Secret changed: restarting the pods that read it"
    kubectl rollout restart statefulset/redis statefulset/redis-state deployment/backend-api --namespace "$namespace"
fi

echo "==> waiting for the rollouts (at most $timeout each)"
kubectl rollout status statefulset/redis --namespace "$namespace" --timeout "$timeout"
kubectl rollout status statefulset/redis-state --namespace "$namespace" --timeout "$timeout"
if [ "$env_name" = test ]; then
    kubectl rollout status statefulset/mysql --namespace "$namespace" --timeout "$timeout"
fi
kubectl rollout status deployment/backend-api --namespace "$namespace" --timeout "$timeout"

cat <<EOF_NEXT

Deployed. To check it:
  kubectl -n $namespace get pods -o wide
  kubectl -n $namespace logs -l app.kubernetes.io/name=calories-app --prefix --tail=50
  kubectl -n $namespace get hpa backend-hpa
  kubectl -n $namespace port-forward service/backend-service 8080:80
      then: curl -fsS http://127.0.0.1:8080/health/ready
To roll back the API to the previous release:
  kubectl -n $namespace rollout undo deployment/backend-api
EOF_NEXT
