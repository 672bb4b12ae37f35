#!/usr/bin/env bash
# Builds calories-app as Dockerfile.scratch does (release, glibc statically linked with
# -C target-feature=+crt-static), checks that the binary has no dynamic dependencies, starts it
# with no services on loopback and checks that its own `healthcheck` subcommand passes, then
# stops it with SIGTERM and checks that it exits cleanly.
#
# Usage: example-app/scripts/check-static.sh    (from anywhere; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/../.."

target="$(rustc -vV | sed -n 's/^host: //p')"
case "$target" in
    *-linux-gnu) ;;
    *) echo "check-static: the static build is for *-linux-gnu hosts, not $target" >&2; exit 1 ;;
esac

echo "==> cargo build --release (crt-static, $target)"
# --target keeps the flag off build scripts and proc macros, which must stay dynamic.
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --quiet -p calories-app --target "$target"
bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/$target/release/calories-app"

# A static binary has no NEEDED entries (ldd's exit status cannot tell: it succeeds on
# static-pie binaries too).
if readelf -d "$bin" | grep -q '(NEEDED)'; then
    echo "check-static: $bin is dynamically linked:" >&2
    readelf -d "$bin" | grep '(NEEDED)' >&2
    exit 1
fi

work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export BIND_ADDR="127.0.0.1:$port"
(cd "$work" && exec env -u DATABASE_URL -u CACHE_URL -u APP_ENV "$bin" >"$work/server.log" 2>&1) &
pid=$!

# The server needs a moment to migrate its new SQLite file; poll its healthcheck (30 s at most).
healthy=no
for _ in $(seq 1 300); do
    if "$bin" healthcheck 2>/dev/null; then healthy=yes; break; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if [ "$healthy" != yes ]; then
    echo "check-static: the static binary did not become healthy; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi

kill -TERM "$pid"
if ! wait "$pid"; then
    echo "check-static: the static binary did not exit cleanly on SIGTERM" >&2
    exit 1
fi
pid=""
if "$bin" healthcheck 2>/dev/null; then
    echo "check-static: healthcheck passed with nothing listening" >&2
    exit 1
fi
echo "static binary: no dynamic dependencies, healthy on $BIND_ADDR, clean SIGTERM exit ($(du -h "$bin" | cut -f1))"
