#!/usr/bin/env bash
# HTTP load with wrk on 127.0.0.1, the HTTP rows of benches/RESULTS.md:
#
# - the http_targets binary (benches/src/bin/http_targets.rs): `/static`, a handler returning
#   fixed bytes (the ceiling), and `/cached`, the same handler behind cache-adapters'
#   HttpCacheLayer, on the memory cache and on Redis (hits: warmed first);
# - calories-app's `GET /meals/daily` on MariaDB seeded with `calories-app seed`, with
#   CACHE_URL=none (every read goes to the database) and CACHE_URL=redis://.. (cache on), and
#   for comparison with CACHE_URL unset (in-process cache and rate limiter), requests rotating
#   over the bearer tokens of many seeded users.
#
# Every row gets the same connections, threads and duration after a warm-up; the rows are
# interleaved over the rounds. Beside wrk's rate and latency percentiles, each run records the
# CPU time of every process involved (from /proc), which explains the rates on a machine whose
# cores they all share.
#
#   benches/http.sh [--quick] [--out DIR]
#
# benches/run.sh calls it with --out (its run directory's http/, read by the report binary).
# Alone, it writes to $CARGO_TARGET_DIR/http-run and prints the HTTP section of the report.
# Installs wrk, curl, redis-server and MariaDB with apt-get when missing. Every server it starts
# binds 127.0.0.1 only, lives in a temporary directory and is stopped on exit; every load is
# bounded in time (wrk -d, under timeout).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=benches/lib.sh
. benches/lib.sh

MODE=full
OUT=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) MODE=quick ;;
        --out) OUT=${2:?--out needs a directory}; shift ;;
        *) echo "usage: $0 [--quick] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done

# The same load shape for every row: connections, wrk threads, seconds, after a warm-up.
CONNECTIONS=64
THREADS=2
TOKEN_USERS=200
if [ "$MODE" = quick ]; then
    SEED_USERS=1000; DURATION=3; WARMUP=1; ROUNDS=1
else
    SEED_USERS=10000; DURATION=10; WARMUP=2; ROUNDS=3
fi
MEALS_PER_USER=30

STARTED=$(date +%s)
ensure_packages wrk:wrk curl:curl redis-server:redis-server redis-cli:redis-tools \
    mariadbd:mariadb-server mariadb-install-db:mariadb-server mariadb:mariadb-client

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
STANDALONE=0
if [ -z "$OUT" ]; then OUT=$TARGET/http-run; STANDALONE=1; fi
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/commands.txt"
: >"$OUT/rows.csv"
BIN=$TARGET/release

# Everything this script starts, stopped on exit (by pid, never by name).
PIDS=()
TEMP_DIRS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # Should mariadbd have outlived its pid above, its own pid file still names it.
    if [ -n "${DB_DIR:-}" ] && [ -f "$DB_DIR/mariadbd.pid" ]; then
        kill "$(cat "$DB_DIR/mariadbd.pid")" 2>/dev/null || true
        for _ in $(seq 100); do [ -f "$DB_DIR/mariadbd.pid" ] || break; sleep 0.1; done
    fi
    rm -rf "${TEMP_DIRS[@]}"
}
trap cleanup EXIT

fact() { echo "$1: $2" >>"$OUT/http.txt"; }
: >"$OUT/http.txt"

# Writes the command to commands.txt with ports and paths made generic.
log_command() {
    echo "$*" | sed -e "s|$OUT/|OUT/|g" -e "s|$ROOT/||g" -e "s|$TARGET/|target/|g" \
        -e "s|127\.0\.0\.1:[0-9]*|127.0.0.1:PORT|g" -e "s|--port=[0-9]*|--port=PORT|g" \
        -e "s|/tmp/bench-[a-z]*\.[A-Za-z0-9]*|TMP|g" >>"$OUT/commands.txt"
}

# Logs the command, then runs it (in the foreground: `run cmd &` would give $! of a subshell).
run() {
    log_command "$@"
    "$@"
}

# Waits until `curl URL` answers 200 (30 s), or the process PID exits.
wait_http() {
    local url=$1 pid=$2 log=$3
    for _ in $(seq 300); do
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$url: the server exited; its log ($log):" >&2
            tail -20 "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "$url did not answer within 30 s; see $log" >&2
    return 1
}

echo "==> build (release): calories-app, http_targets, report"
t0=$(date +%s)
# One package at a time: built together, their features would unify into a third build.
run cargo build --release --locked -p calories-app
run cargo build --release --locked -p cache-benches --bin http_targets --bin report
fact build_s $(($(date +%s) - t0))

echo "==> redis-server and MariaDB on 127.0.0.1"
REDIS_DIR=$(mktemp -d /tmp/bench-redis.XXXXXX)
TEMP_DIRS+=("$REDIS_DIR")
start_redis "$REDIS_DIR" || exit 1
PIDS+=("$REDIS_PID")
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

# MariaDB in a temporary directory (a short path: the socket's must fit in 108 bytes). As root,
# both mariadb-install-db and mariadbd need --user=root; as anyone else, no --user.
DB_DIR=$(mktemp -d /tmp/bench-mariadb.XXXXXX)
TEMP_DIRS+=("$DB_DIR")
mkdir "$DB_DIR/tmp"
AS_USER=()
[ "$(id -u)" -eq 0 ] && AS_USER=(--user=root)
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)
SOCKET=$DB_DIR/mariadbd.sock
run mariadb-install-db --no-defaults "${AS_USER[@]}" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve --datadir="$DB_DIR/data" --tmpdir="$DB_DIR/tmp" \
    >"$DB_DIR/install.log" 2>&1 \
    || { tail -20 "$DB_DIR/install.log" >&2; exit 1; }
DB_PID=
for attempt in 1 2 3 4 5; do
    DB_PORT=$(free_port)
    # The buffer pool holds the whole seeded data set (a production-like warm database);
    # native AIO is often blocked in containers.
    DB_COMMAND=("$MARIADBD" --no-defaults "${AS_USER[@]}" --datadir="$DB_DIR/data"
        --tmpdir="$DB_DIR/tmp" --socket="$SOCKET" --pid-file="$DB_DIR/mariadbd.pid"
        --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin
        --performance-schema=OFF --innodb-buffer-pool-size=512M --innodb-use-native-aio=0
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci)
    log_command "${DB_COMMAND[@]}"
    "${DB_COMMAND[@]}" >"$DB_DIR/mariadbd.log" 2>&1 &
    DB_PID=$!
    for _ in $(seq 600); do
        if mariadb --no-defaults --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
            break 2
        fi
        kill -0 "$DB_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill "$DB_PID" 2>/dev/null || true
    wait "$DB_PID" 2>/dev/null || true
    DB_PID=
    grep -q "Address already in use" "$DB_DIR/mariadbd.log" \
        || { tail -20 "$DB_DIR/mariadbd.log" >&2; exit 1; }
done
[ -n "$DB_PID" ] || { echo "mariadbd did not start after $attempt attempts" >&2; exit 1; }
PIDS+=("$DB_PID")
run mariadb --no-defaults --socket="$SOCKET" -uroot -e "
    CREATE DATABASE calories CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
    CREATE USER 'calories'@'127.0.0.1' IDENTIFIED BY 'bench';
    GRANT ALL PRIVILEGES ON calories.* TO 'calories'@'127.0.0.1';"
DB_URL="mysql://calories:bench@127.0.0.1:$DB_PORT/calories"
fact mariadb "$(mariadb --no-defaults --socket="$SOCKET" -uroot -N -e 'SELECT VERSION()')"
fact redis "$(redis-server --version | awk '{print $3}' | sed 's/^v=//')"
fact wrk "$(wrk --version 2>&1 | head -1 | awk '{print $2}')"
echo "==> MariaDB $(sed -n 's/^mariadb: //p' "$OUT/http.txt") on 127.0.0.1:$DB_PORT, redis-server on $REDIS_URL"

echo "==> seed: $SEED_USERS users x $MEALS_PER_USER meals"
t0=$(date +%s.%N)
run env DATABASE_URL="$DB_URL" timeout 3600 "$BIN/calories-app" seed \
    --users "$SEED_USERS" --meals-per-user "$MEALS_PER_USER" | tee "$OUT/seed.txt"
fact seed_wall_s "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')"
fact seed_users "$SEED_USERS"
fact seed_meals_per_user "$MEALS_PER_USER"
fact seed_s "$(sed -n 's/.* meals in \([0-9.]*\) s.*/\1/p' "$OUT/seed.txt")"
fact seed_meals "$(mariadb --no-defaults --socket="$SOCKET" -uroot -N -e 'SELECT COUNT(*) FROM calories.meals')"

echo "==> servers"
# Two http_targets (memory cache, Redis) and three calories-app (cache off, cache on Redis, cache
# on memory), all on one MariaDB and one Redis. Only one is under load at a time.
# Set by the two functions below; read directly or through ${!name}.
PORT_memory='' PORT_redis='' PORT_tiered='' PORT_off='' PORT_on=''
start_targets() { # name cache_url [local_capacity] -> sets PORT_<name> and PID_<name>
    local name=$1 cache=$2 local_capacity=${3:-0} port pid
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        log_command "CACHE_URL=$cache CACHE_LOCAL_CAPACITY=$local_capacity $BIN/http_targets 127.0.0.1:$port &"
        if [ -n "$cache" ]; then
            CACHE_URL=$cache CACHE_LOCAL_CAPACITY=$local_capacity \
                "$BIN/http_targets" "127.0.0.1:$port" >"$OUT/targets-$name.log" 2>&1 &
        else
            env -u CACHE_URL "$BIN/http_targets" "127.0.0.1:$port" >"$OUT/targets-$name.log" 2>&1 &
        fi
        pid=$!
        PIDS+=("$pid")
        if wait_http "http://127.0.0.1:$port/static" "$pid" "$OUT/targets-$name.log" 2>/dev/null; then
            printf -v "PORT_$name" %s "$port"
            printf -v "PID_$name" %s "$pid"
            return 0
        fi
    done
    echo "http_targets ($name) did not start; see $OUT/targets-$name.log" >&2
    exit 1
}
start_app() { # name cache_url [local_capacity] -> sets PORT_<name> and PID_<name>
    local name=$1 cache=$2 local_capacity=${3:-0} port pid
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        # The limits are far above the load so that the limiter counts but never refuses.
        local command=(env BIND_ADDR="127.0.0.1:$port" DATABASE_URL="$DB_URL" CACHE_URL="$cache"
            CACHE_LOCAL_CAPACITY="$local_capacity"
            JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
            RATE_LIMIT_PER_MINUTE=1000000000 RATE_LIMIT_ANON_PER_MINUTE=1000000000
            PHOTO_DIR="$DB_DIR/photos" "$BIN/calories-app")
        log_command "${command[@]}" "&"
        "${command[@]}" >"$OUT/app-$name.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        if wait_http "http://127.0.0.1:$port/health/live" "$pid" "$OUT/app-$name.log" 2>/dev/null; then
            printf -v "PORT_$name" %s "$port"
            printf -v "PID_$name" %s "$pid"
            return 0
        fi
    done
    echo "calories-app ($name) did not start; see $OUT/app-$name.log" >&2
    exit 1
}
start_targets memory ""
start_targets redis "$REDIS_URL"
# Redis behind a local tier (cache-core's local_tier): hits from the process, as a replica of a
# scaled-out deployment serves them.
start_targets tiered "$REDIS_URL" 10000
start_app off none
start_app on "$REDIS_URL"
start_app tiered_app "$REDIS_URL" 10000
# For comparison: the in-process memory cache and rate limiter, no Redis round trip at all.
start_app mem ""
fact body_bytes "$(curl -fsS "http://127.0.0.1:$PORT_memory/static" | wc -c)"
echo "http_targets: $(head -1 "$OUT/targets-memory.log")"

# Tokens of the first TOKEN_USERS seeded users (JWTs: valid on every app instance, as they share
# JWT_SECRET). Logins check argon2 hashes, slow on purpose: four at a time.
echo "==> logging in $TOKEN_USERS seeded users"
# Each login prints its token with one write (atomic on a pipe), so parallel ones do not mix.
log_command "curl -X POST http://127.0.0.1:$PORT_on/auth/login -d '{\"email\":\"userNNNNNNNN@seed.example\",\"password\":\"seed-password\"}' (users 1 to $TOKEN_USERS, 4 at a time)"
# shellcheck disable=SC2016 # the script is sh's, with the URL as $0
seq 1 "$TOKEN_USERS" | xargs -P 4 -I{} sh -c '
    n=$(printf "%08d" {})
    token=$(curl -fsS --max-time 30 -X POST "$0/auth/login" -H "content-type: application/json" \
        -d "{\"email\":\"user$n@seed.example\",\"password\":\"seed-password\"}" \
        | sed -n "s/.*\"access_token\":\"\([^\"]*\)\".*/\1/p")
    [ -n "$token" ] && printf "%s\n" "$token"' "http://127.0.0.1:$PORT_on" \
    >"$OUT/tokens.txt" || true
[ "$(grep -c . "$OUT/tokens.txt")" -eq "$TOKEN_USERS" ] \
    || { echo "only $(grep -c . "$OUT/tokens.txt") of $TOKEN_USERS logins succeeded" >&2; exit 1; }
TOKEN=$(head -1 "$OUT/tokens.txt")
fact daily_body_bytes "$(curl -fsS -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT_off/meals/daily" | wc -c)"
echo "/meals/daily for user00000001: $(curl -fsS -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT_off/meals/daily" | head -c 300)..."

# The cache's hits and misses on the cache-on app, summed over its keys (daily and profile).
cache_counts() {
    curl -fsS "http://127.0.0.1:$PORT_on/metrics" \
        | awk '/^cache_hits_total/ { h += $NF } /^cache_misses_total/ { m += $NF } END { printf "%d %d\n", h, m }'
}

# row name, server (its PID_ variable), path, with tokens (1) or not (0)
ROWS=(
    "static|memory|/static|0"
    "cached_memory|memory|/cached|0"
    "cached_redis|redis|/cached|0"
    "cached_tiered|tiered|/cached|0"
    "daily_off|off|/meals/daily|1"
    "daily_on|on|/meals/daily|1"
    "daily_on_tiered|tiered_app|/meals/daily|1"
    "daily_on_memory|mem|/meals/daily|1"
)

wrk_once() { # seconds url tokens(0|1)
    local tokens=
    [ "$3" = 1 ] && tokens=$OUT/tokens.txt
    run env WRK_TOKENS="$tokens" timeout $(($1 + 60)) \
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "${1}s" --latency -s benches/wrk.lua "$2"
}

# Where the CPU goes during a measured run, from /proc: each process's user + system ticks
# (the server under load, redis-server, mariadbd), wrk's through bash's `times`, and the whole
# machine's busy ticks (the rest is other work on the machine).
TICKS=$(getconf CLK_TCK)
ticks_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# busy: user + nice + system + irq + softirq; then irq + softirq alone; then steal (time the
# hypervisor gave this VM's vCPUs to someone else).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $7 + $8, $9 }' /proc/stat; }
cpu_snapshot() {
    echo "$(date +%s.%N) $(ticks_of "$1") $(ticks_of "$REDIS_PID") $(ticks_of "$DB_PID") $(machine_ticks)"
}
seconds_of_times() { # the children line of `times`: "0m1.230s 0m0.450s" -> 1.680
    awk 'NR == 2 { gsub(/s/, ""); split($1, u, "m"); split($2, s, "m"); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }'
}

echo "==> load: $ROUNDS round(s) of ${DURATION} s per row, $CONNECTIONS connections, $THREADS wrk threads, ${WARMUP} s warm-up each"
LOAD_T0=$(date +%s)
HITS=0
MISSES=0
for round in $(seq "$ROUNDS"); do
    for row in "${ROWS[@]}"; do
        IFS='|' read -r name server path tokens <<<"$row"
        port_var=PORT_$server
        pid_var=PID_$server
        url="http://127.0.0.1:${!port_var}$path"
        wrk_once "$WARMUP" "$url" "$tokens" >"$OUT/warmup-$name-$round.txt"
        if [ "$name" = daily_on ]; then read -r hits0 misses0 < <(cache_counts); fi
        read -r at0 server0 redis0 db0 busy0 irq0 steal0 < <(cpu_snapshot "${!pid_var}")
        (wrk_once "$DURATION" "$url" "$tokens" && times) >"$OUT/wrk-$name-$round.txt"
        read -r at1 server1 redis1 db1 busy1 irq1 steal1 < <(cpu_snapshot "${!pid_var}")
        if [ "$name" = daily_on ]; then
            read -r hits1 misses1 < <(cache_counts)
            HITS=$((HITS + hits1 - hits0))
            MISSES=$((MISSES + misses1 - misses0))
        fi
        summary=$(grep '^wrk-summary' "$OUT/wrk-$name-$round.txt") \
            || { echo "wrk printed no summary for $name; see $OUT/wrk-$name-$round.txt" >&2; exit 1; }
        wrk_cpu=$(tail -2 "$OUT/wrk-$name-$round.txt" | seconds_of_times)
        cpu=$(awk -v t="$TICKS" -v s=$((server1 - server0)) -v r=$((redis1 - redis0)) \
            -v d=$((db1 - db0)) -v b=$((busy1 - busy0)) -v i=$((irq1 - irq0)) \
            -v st=$((steal1 - steal0)) -v w="$wrk_cpu" -v at0="$at0" -v at1="$at1" \
            'BEGIN { printf "server_cpu_s=%.2f,redis_cpu_s=%.2f,db_cpu_s=%.2f,wrk_cpu_s=%.2f,busy_cpu_s=%.2f,irq_cpu_s=%.2f,steal_cpu_s=%.2f,window_s=%.3f", s / t, r / t, d / t, w, b / t, i / t, st / t, at1 - at0 }')
        echo "$name,$round,$(echo "${summary#wrk-summary }" | tr ' ' ','),$cpu" >>"$OUT/rows.csv"
        printf '  %-14s round %s: %s %s\n' "$name" "$round" "${summary#wrk-summary }" "$cpu"
    done
done
fact load_s $(($(date +%s) - LOAD_T0))
# Each app's last answer, to show what was measured (Cache-Status of the HTTP layer's hits).
fact cache_status_memory "$(curl -fsS -D - -o /dev/null "http://127.0.0.1:$PORT_memory/cached" | tr -d '\r' | sed -n 's/^cache-status: //Ip')"
fact cache_status_tiered "$(curl -fsS -D - -o /dev/null "http://127.0.0.1:$PORT_tiered/cached" | tr -d '\r' | sed -n 's/^cache-status: //Ip')"
fact cache_status_redis "$(curl -fsS -D - -o /dev/null "http://127.0.0.1:$PORT_redis/cached" | tr -d '\r' | sed -n 's/^cache-status: //Ip')"
# Over the measured daily_on runs only: hits and misses of the daily and profile keys.
fact daily_on_cache_hits "$HITS"
fact daily_on_cache_misses "$MISSES"
fact connections "$CONNECTIONS"
fact cores "$(nproc)"
fact threads "$THREADS"
fact duration_s "$DURATION"
fact warmup_s "$WARMUP"
fact rounds "$ROUNDS"
fact token_users "$TOKEN_USERS"
fact mode "$MODE"
fact total_s $(($(date +%s) - STARTED))
# One line per distinct command.
awk '!seen[$0]++' "$OUT/commands.txt" >"$OUT/commands.tmp" && mv "$OUT/commands.tmp" "$OUT/commands.txt"

if [ "$STANDALONE" = 1 ]; then
    echo
    "$BIN/report" --http "$OUT"
fi
echo "==> HTTP load done in $(($(date +%s) - STARTED)) s: $OUT"
