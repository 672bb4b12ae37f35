#!/usr/bin/env bash
# Fuzzes the running app through its own OpenAPI document with schemathesis (from PyPI):
# thousands of generated requests, valid and not, against every operation, signed in as a test
# user. Fails on any 5xx, on a response that breaks the documented schema, status codes or
# content types.
#
# Usage: example-app/scripts/schemathesis.sh [seconds]   (default 60; run after a cargo build)
# The seed is fixed for CI (SCHEMATHESIS_SEED overrides it) so that a failure reproduces.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${1:-60}"
seed="${SCHEMATHESIS_SEED:-20261126}"
target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/schemathesis-venv"
version="4.32.5"

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    echo "==> installing schemathesis $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

cargo build --quiet --locked -p calories-app
bin="$(cd "$target_dir" && pwd)/debug/calories-app"

work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
(cd "$work" && exec env -u DATABASE_URL -u CACHE_URL -u APP_ENV \
    BIND_ADDR="127.0.0.1:$port" RATE_LIMIT_PER_MINUTE=10000000 RATE_LIMIT_ANON_PER_MINUTE=10000000 RATE_LIMIT_AUTH_PER_MINUTE=10000000 UPLOADS_PER_MINUTE=10000000 \
    RUST_LOG=warn PHOTO_DIR="$work/photos" "$bin" >"$work/app.log" 2>&1) &
pid=$!
for _ in $(seq 1 300); do
    if BIND_ADDR="127.0.0.1:$port" "$bin" healthcheck >/dev/null 2>&1; then break; fi
    sleep 0.1
done

# A fresh account's access token; each call makes a new account, hence a new session.
new_token() {
    python3 - "$base" "$1" <<'PY'
import json, sys, urllib.request
body = json.dumps({"email": sys.argv[2], "password": "correct horse battery"}).encode()
request = urllib.request.Request(sys.argv[1] + "/auth/register", body, {"content-type": "application/json"})
print(json.load(urllib.request.urlopen(request, timeout=10))["access_token"])
PY
}

checks=not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance
# Every operation but those that end sessions, signed in: a logout, or a DELETE of the session
# id that schemathesis learns from GET /auth/sessions, would end the session that every other
# operation's token belongs to, and the rest of the run would only see 401s.
"$venv/bin/schemathesis" run "$base/openapi.json" \
    --header "Authorization: Bearer $(new_token fuzz@example.com)" \
    --exclude-path-regex '^/auth/(logout|sessions/)' \
    --checks "$checks" \
    --phases examples,coverage,fuzzing \
    --max-time "$seconds" --seed "$seed" --workers 2 --no-color
# Those, with a session of their own (ended early on; later calls are 401s).
"$venv/bin/schemathesis" run "$base/openapi.json" \
    --header "Authorization: Bearer $(new_token fuzz-logout@example.com)" \
    --include-path-regex '^/auth/(logout|sessions/)' \
    --checks "$checks" \
    --phases examples,coverage,fuzzing \
    --max-time 10 --seed "$seed" --workers 1 --no-color
if grep -q "panicked" "$work/app.log"; then
    echo "schemathesis: the app panicked:" >&2
    cat "$work/app.log" >&2
    exit 1
fi
