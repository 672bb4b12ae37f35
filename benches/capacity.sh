#!/usr/bin/env bash
# The capacity and chaos run of the whole stack (issue #15): MariaDB, Redis, three calories-app
# replicas with the Kubernetes settings and nginx in front, all on 127.0.0.1; simulated users
# with a read-your-writes oracle; Redis, a replica and MariaDB killed or stopped in turn, a
# rolling restart; step loads with the cache on and with CACHE_URL=none. The driver is the
# `capacity` binary (benches/capacity/), which starts, faults and stops the servers itself.
#
#   benches/capacity.sh            full run: 10,000 users, ~25 min once built; writes
#                                  benches/CAPACITY.md and benches/capacity.png
#   benches/capacity.sh --quick    1,000 users, short phases, < 5 min once built; the report
#                                  goes to the run directory (add --write to replace benches/'s)
#   benches/capacity.sh --smoke    a few users, a short Redis kill, the debug build; fails on
#                                  any oracle violation, any 500 or a failed start (CI)
#
# Installs nginx-light, redis-server, MariaDB and a font with apt-get when missing. Every server
# binds 127.0.0.1, lives in the run directory and is stopped by its pid at the end, on success
# or failure (the driver stops them; the trap below kills any pid it left in RUN/pids). The
# driver runs under `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=benches/lib.sh
. benches/lib.sh

MODE=full
WRITE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) MODE=quick ;;
        --smoke) MODE=smoke ;;
        --write) WRITE=1 ;;
        *) echo "usage: $0 [--quick [--write] | --smoke]" >&2; exit 2 ;;
    esac
    shift
done

case "$MODE" in
    full) LIMIT=5400 ;;
    quick) LIMIT=900 ;;
    smoke) LIMIT=300 ;;
esac

ensure_packages nginx:nginx-light redis-server:redis-server mariadbd:mariadb-server \
    mariadb-install-db:mariadb-server mariadb:mariadb-client curl:curl \
    /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core
# nginx-light's package starts a system nginx where a service manager runs; the run never
# uses it (its own nginx listens on a free port).

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "$MODE" = smoke ]; then
    # CI time matters: the debug build `cargo build` makes, not a release build.
    echo "==> build (debug): calories-app, capacity"
    cargo build --locked -p calories-app
    cargo build --locked -p capacity
    BIN=$TARGET/debug
else
    echo "==> build (release): calories-app, capacity"
    # One package at a time: built together, their features would unify into a third build.
    cargo build --release --locked -p calories-app
    cargo build --release --locked -p capacity
    BIN=$TARGET/release
fi

RUN_DIR=$(mktemp -d /tmp/capacity-run.XXXXXX)
REPORT_DIR=$RUN_DIR
if [ "$MODE" = full ] || [ "$WRITE" = 1 ]; then REPORT_DIR=$ROOT/benches; fi

# Whatever the driver left running (it stops everything itself; this is for a crash).
cleanup() {
    local pid
    if [ -f "$RUN_DIR/pids" ]; then
        while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$RUN_DIR/pids"
    fi
    # nginx's workers are children of its master: gone with it, but not if it was killed first.
    if [ -f "$RUN_DIR/nginx/nginx.pid" ]; then kill -9 "$(cat "$RUN_DIR/nginx/nginx.pid")" 2>/dev/null || true; fi
}
trap cleanup EXIT

COMMAND="benches/capacity.sh"
[ "$MODE" = full ] || COMMAND="$COMMAND --$MODE"
echo "==> $COMMAND: run directory $RUN_DIR"
status=0
timeout --kill-after=30 "$LIMIT" "$BIN/capacity" --mode "$MODE" --app-bin "$BIN/calories-app" \
    --run-dir "$RUN_DIR" --report-dir "$REPORT_DIR" --command "$COMMAND" || status=$?
if [ "$status" -eq 124 ]; then
    echo "capacity: the run passed its $LIMIT s bound and was stopped; logs in $RUN_DIR" >&2
fi
if [ "$status" -ne 0 ]; then
    echo "capacity: failed (exit $status); logs, pids and violations.log in $RUN_DIR" >&2
    exit "$status"
fi
echo "==> report: $REPORT_DIR/CAPACITY.md, chart: $REPORT_DIR/capacity.png; logs in $RUN_DIR"
