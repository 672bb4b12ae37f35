#!/usr/bin/env bash
# Every check and test the project has, on a fresh Debian/Ubuntu machine.
# Installs what the tests need when it is missing (redis-server, MariaDB, Prometheus,
# Alertmanager, redis_exporter, mysqld_exporter and the Pushgateway from apt; cargo-deny and
# cargo-hack with cargo install --locked), then runs fmt, clippy -D warnings, the feature matrix
# and a publish dry run of the library crates, a build of the benches, rustdoc -D warnings,
# cargo deny (licenses, bans, sources), the deployment and monitoring validators (promtool,
# amtool, actionlint, ...) and the whole test suite, which includes the restore drill
# (tests/backup.rs) and the live alert drill (tests/monitoring.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The tests start their own servers on 127.0.0.1 in temporary directories: redis-server for the
# cache (also three or four of them joined as a Redis Cluster, by the tests themselves, so
# redis-cli is not needed; Redis 7 for the TLS cluster test), and MariaDB (mariadbd,
# mariadb-install-db, the mariadb client) for the example app.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ! command -v mariadb-install-db >/dev/null 2>&1 || ! { command -v mariadbd || test -x /usr/sbin/mariadbd; } >/dev/null 2>&1; then
    missing+=(mariadb-server mariadb-client)
fi
# The monitoring drill (example-app/tests/monitoring.rs) starts Prometheus, Alertmanager, the
# two exporters and the Pushgateway (the backup job's metrics) the same way; validate-deploy.sh uses promtool and amtool from the first two.
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v prometheus-redis-exporter >/dev/null 2>&1 || missing+=(prometheus-redis-exporter)
command -v prometheus-mysqld-exporter >/dev/null 2>&1 || missing+=(prometheus-mysqld-exporter)
command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing ${missing[*]} (the tests start their own on 127.0.0.1)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

echo "==> cargo hack: each feature of the library crates builds on its own (memory-only included)"
command -v cargo-hack >/dev/null 2>&1 || cargo install cargo-hack --locked --quiet
# No --locked: --no-dev-deps drops the dev-dependencies from the manifests while it runs (and
# puts manifests and Cargo.lock back afterwards), which --locked would refuse.
cargo hack check --each-feature --no-dev-deps -p cache-core -p cache-macros -p cache-adapters
git diff --quiet -- Cargo.lock || { echo "cargo hack left Cargo.lock changed" >&2; exit 1; }

echo "==> cargo publish --dry-run: the library crates package, and build from their .crate files alone"
# --allow-dirty: a check of what would be packaged, run on a working tree as much as on CI's clone.
cargo publish --workspace --dry-run --locked --allow-dirty

echo "==> cargo bench --no-run (the benches compile; run them with benches/run.sh)"
cargo bench -p cache-benches --no-run --locked

echo "==> cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked --quiet

# Licenses, banned crates and sources need nothing but Cargo.lock; the advisory check needs the
# RustSec database from the network, so the CI workflow runs it and this script does not.
cargo_deny_version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $cargo_deny_version\$"; then
    echo "==> installing cargo-deny $cargo_deny_version (cargo install --locked)"
    cargo install --locked --quiet "cargo-deny@$cargo_deny_version"
fi
echo "==> cargo deny check licenses bans sources (deny.toml)"
cargo deny --locked check licenses bans sources
echo "    skipped: cargo deny check advisories (needs the RustSec database from the network; .github/workflows/ci.yml runs it)"

echo "==> deployment and monitoring files (offline validators)" && scripts/validate-deploy.sh
echo "==> static binary (as Dockerfile.scratch builds it: started, health-checked, stopped)"
example-app/scripts/check-static.sh
echo "==> cargo test"
cargo test --workspace --all-features --locked

echo "==> capacity smoke: the whole stack (MariaDB, Redis, three replicas, nginx) under simulated users with the oracle, a Redis kill included (benches/capacity.sh --smoke, bounded)"
benches/capacity.sh --smoke

echo "==> schemathesis: the running app fuzzed through its OpenAPI document (bounded)"
example-app/scripts/schemathesis.sh 60

echo "==> fuzzing (bounded)"
scripts/fuzz.sh 15
