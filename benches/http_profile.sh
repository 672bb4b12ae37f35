#!/usr/bin/env bash
# Instructions per HTTP request in the server process (user space), counted by callgrind: the
# same from run to run, where this 2-core VM's rates move by tens of percent. N keep-alive
# requests by curl after a warm-up; the counters are zeroed before them and dumped after, so
# start-up and warm-up do not count.
#
#   benches/http_profile.sh static          # http_targets GET /static
#   benches/http_profile.sh cached-memory   # GET /cached, HttpCacheLayer on the memory cache
#   benches/http_profile.sh cached-redis    # the same on Redis
#   benches/http_profile.sh daily-memory    # calories-app GET /meals/daily, in-process cache
#   benches/http_profile.sh daily-redis     # the same with CACHE_URL=redis://.. (every read a hit)
#   benches/http_profile.sh ROW 5000        # N requests (default 2000)
#
# The daily rows run on SQLite: on a hit, /meals/daily reads nothing from the database. Leaves
# the callgrind file in target/profile/ for callgrind_annotate. Needs valgrind and curl;
# everything it starts binds 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
ROW=${1:-}
N=${2:-2000}
case "$ROW" in
    static | cached-memory | cached-redis | daily-memory | daily-redis) ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
esac
for tool in valgrind callgrind_control curl redis-server; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install valgrind curl redis-server)" >&2; exit 1; }
done
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release
if [[ $ROW == daily-* ]]; then
    cargo build --release --locked -q -p calories-app
else
    cargo build --release --locked -q -p cache-benches --bin http_targets
fi
mkdir -p "$TARGET/profile"

DIR=$(mktemp -d /tmp/bench-profile.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

CACHE=
if [[ $ROW == *-redis ]]; then
    start_redis "$DIR" || exit 1
    PIDS+=("$REDIS_PID")
    CACHE=redis://127.0.0.1:$REDIS_PORT/0
fi

wait_up() { # url pid
    for _ in $(seq 600); do
        curl -fs -o /dev/null --max-time 2 "$1" && return 0
        kill -0 "$2" 2>/dev/null || { echo "the server exited; see $DIR" >&2; exit 1; }
        sleep 0.2
    done
    echo "$1 did not answer" >&2
    exit 1
}

HEADER=
if [[ $ROW == daily-* ]]; then
    export DATABASE_URL="sqlite://$DIR/calories.db" PHOTO_DIR="$DIR/photos" RUST_LOG=warn \
        JWT_SECRET=profile-secret-profile-secret-profile-0123 \
        RATE_LIMIT_PER_MINUTE=1000000000 RATE_LIMIT_ANON_PER_MINUTE=1000000000
    "$BIN/calories-app" seed --users 10 --meals-per-user 30 >/dev/null
    # Log in on an instance outside valgrind: argon2 is slow on purpose, slower under callgrind.
    PORT=$(free_port)
    BIND_ADDR=127.0.0.1:$PORT CACHE_URL=$CACHE "$BIN/calories-app" >"$DIR/login.log" 2>&1 &
    LOGIN_PID=$!
    PIDS+=("$LOGIN_PID")
    wait_up "http://127.0.0.1:$PORT/health/live" "$LOGIN_PID"
    TOKEN=$(curl -fsS -X POST "http://127.0.0.1:$PORT/auth/login" -H 'content-type: application/json' \
        -d '{"email":"user00000001@seed.example","password":"seed-password"}' \
        | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    kill "$LOGIN_PID"
    HEADER="authorization: Bearer $TOKEN"
    PATH_=/meals/daily
    SERVER=("$BIN/calories-app")
else
    PATH_=${ROW%%-*}
    PATH_=/${PATH_}
    SERVER=("$BIN/http_targets")
fi

PORT=$(free_port)
if [[ $ROW == daily-* ]]; then
    export BIND_ADDR=127.0.0.1:$PORT CACHE_URL=$CACHE
else
    SERVER+=("127.0.0.1:$PORT")
    export CACHE_URL=$CACHE
fi
OUT_FILE=$TARGET/profile/http.$ROW
rm -f "$OUT_FILE"*
valgrind --tool=callgrind --callgrind-out-file="$OUT_FILE" "${SERVER[@]}" >"$DIR/server.log" 2>&1 &
VG=$!
PIDS+=("$VG")
if [[ $ROW == daily-* ]]; then
    wait_up "http://127.0.0.1:$PORT/health/live" "$VG"
else
    wait_up "http://127.0.0.1:$PORT/static" "$VG"
fi

requests() { # count -> a curl config: one keep-alive connection, COUNT requests
    [ -n "$HEADER" ] && echo "header = \"$HEADER\""
    for _ in $(seq "$1"); do
        echo "url = \"http://127.0.0.1:$PORT$PATH_\""
        echo 'output = "/dev/null"'
    done
}
requests 50 >"$DIR/warm.cfg"
requests "$N" >"$DIR/measure.cfg"
curl -fsS -K "$DIR/warm.cfg"
callgrind_control -z "$VG" >/dev/null
codes=$(curl -sS -K "$DIR/measure.cfg" -w '%{http_code}\n' | sort | uniq -c | tr -s ' ')
callgrind_control -d "$ROW" "$VG" >/dev/null
total=$(callgrind_annotate "$OUT_FILE.1" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
echo "$ROW: $((total / N)) instructions per request in the server (responses:$codes)"
echo "profile: $OUT_FILE.1 (callgrind_annotate --inclusive=yes $OUT_FILE.1)"
