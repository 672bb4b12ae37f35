#!/usr/bin/env bash
# Runs every benchmark of cache-benches against one redis-server on 127.0.0.1, then
# redis-benchmark against the same server (the machine's ceiling), then the HTTP load of
# benches/http.sh (wrk against cache-adapters' layer and calories-app on MariaDB), and writes
# benches/RESULTS.md and benches/throughput.png from that one run.
#
#   benches/run.sh           full run (about 20 minutes on the project's 2-core machine)
#   benches/run.sh --quick   short samples (under 5 minutes once built)
#
# Installs redis-server, redis-benchmark, a TrueType font for the chart, wrk, curl and MariaDB
# with apt-get when they are missing. Every server it starts binds 127.0.0.1 only and is stopped
# on exit; every load is bounded in count (criterion's iterations, redis-benchmark -n) and time
# (timeout, wrk -d).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=benches/lib.sh
. benches/lib.sh

MODE=full
case "${1:-}" in
    --quick) MODE=quick ;;
    "") ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

STARTED=$(date +%s)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

FONT=${BENCH_FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}
# Everything http.sh needs too, so that one apt-get run installs it all.
ensure_packages redis-server:redis-server redis-benchmark:redis-tools redis-cli:redis-tools \
    "$FONT:fonts-dejavu-core" wrk:wrk curl:curl mariadbd:mariadb-server \
    mariadb-install-db:mariadb-server mariadb:mariadb-client

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RUN=$TARGET/bench-run
rm -rf "$RUN"
mkdir -p "$RUN/criterion" "$RUN/facts"
: >"$RUN/commands.txt"

# One redis-server for everything: the criterion benches and redis-benchmark measure the same
# server. 127.0.0.1 only, no persistence, in a temporary directory.
REDIS_DIR=$(mktemp -d)
REDIS_PID=
cleanup() {
    if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
    rm -rf "$REDIS_DIR"
}
trap cleanup EXIT
start_redis "$REDIS_DIR" || exit 1
PORT=$REDIS_PORT
URL="redis://127.0.0.1:$PORT/0"
echo "==> redis-server $(redis-server --version | awk '{print $3}') on $URL"

run() {
    echo "$*" | sed "s|$ROOT/||g; s|$TARGET/|target/|g; s|$PORT|PORT|g" >>"$RUN/commands.txt"
    "$@"
}

echo "==> build (release)"
t0=$(date +%s)
run cargo bench -p cache-benches --locked --no-run
run cargo build --release -p cache-benches --bin report --locked
BUILD_S=$(($(date +%s) - t0))

echo "==> criterion benches ($MODE)"
QUICK=0
[ "$MODE" = quick ] && QUICK=1
t0=$(date +%s)
run env BENCH_REDIS_URL="$URL" BENCH_QUICK="$QUICK" BENCH_FACTS_DIR="$RUN/facts" \
    CRITERION_HOME="$RUN/criterion" timeout 3000 \
    cargo bench -p cache-benches --locked 2>&1 | tee "$RUN/cargo-bench.log" \
    | grep -E '^(Benchmarking [^:]+$|fact |measuring)' || true
# The last fact of the redis bench, and the scale bench's invalidation delays (issue 8).
for fact in stampede_redis_cache_core scale_invalidation; do
    grep -q "^fact $fact" "$RUN/cargo-bench.log" \
        || { echo "cargo bench did not finish (no fact $fact); see $RUN/cargo-bench.log" >&2; exit 1; }
done
BENCH_S=$(($(date +%s) - t0))

echo "==> redis-benchmark against the same server"
if [ "$MODE" = quick ]; then REPEATS=3; N1=10000; N=30000; else REPEATS=5; N1=30000; N=100000; fi
t0=$(date +%s)
# The project's stored values: 1,032 bytes (the ~1 KiB struct) and 120 bytes (the 100 B string),
# envelope included.
# Two shapes per concurrency N: N connections with one request in flight each (-c N, what a
# connection-per-operation pool gets), and one connection with N requests in flight (-c 1 -P N,
# the shape of N tasks on one multiplexed connection: the server's ceiling for that shape).
bench_redis() { # size clients pipeline n rep
    run timeout 120 redis-benchmark -h 127.0.0.1 -p "$PORT" -t set,get -d "$1" \
        -c "$2" -P "$3" -n "$4" --csv \
        | awk -F, -v size="$1" -v c="$2" -v p="$3" -v r="$5" \
            'NR > 1 { gsub(/"/, ""); print tolower($1) "," size "," c "," p "," r "," $2 }' \
        >>"$RUN/redis-benchmark.csv"
}
for size in 1032 120; do
    for n_flight in 1 16 64 256; do
        n=$N
        [ "$n_flight" = 1 ] && n=$N1
        for rep in $(seq "$REPEATS"); do
            bench_redis "$size" "$n_flight" 1 "$n" "$rep"
            if [ "$n_flight" != 1 ]; then bench_redis "$size" 1 "$n_flight" "$((N * 10))" "$rep"; fi
        done
    done
done
REDIS_BENCH_S=$(($(date +%s) - t0))
# Keep commands.txt readable: one line per distinct redis-benchmark shape.
awk '!seen[$0]++' "$RUN/commands.txt" >"$RUN/commands.tmp" && mv "$RUN/commands.tmp" "$RUN/commands.txt"

echo "==> HTTP load (benches/http.sh)"
t0=$(date +%s)
QUICK_FLAG=()
[ "$MODE" = quick ] && QUICK_FLAG=(--quick)
run benches/http.sh "${QUICK_FLAG[@]}" --out "$RUN/http"
cat "$RUN/http/commands.txt" >>"$RUN/commands.txt"
HTTP_S=$(($(date +%s) - t0))

if [ "$MODE" = quick ]; then
    SETTINGS="quick: criterion warm-up 0.2 s, measurement 0.6 s, 10 samples; paired ratios 31 rounds; invalidation 300 writes; redis-benchmark 3 runs; HTTP 1 round of 3 s per row"
else
    SETTINGS="full: criterion warm-up 1 s, measurement 3 s, 30 samples; paired ratios 101 rounds; invalidation 2,000 writes; redis-benchmark 5 runs; HTTP 3 rounds of 10 s per row"
fi
TOTAL_S=$(($(date +%s) - STARTED))
HYPERVISOR=$(lscpu | sed -n 's/^Hypervisor vendor: *//p' | head -1)
cat >"$RUN/machine.txt" <<INFO
date: $(date -u +%Y-%m-%dT%H:%MZ)
cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)
cores: $(nproc)${HYPERVISOR:+ ($HYPERVISOR guest)}, $(free -g | awk '/^Mem:/ {print $2}') GiB memory
load average at start: $LOAD_AT_START (1, 5, 15 min)
kernel: $(uname -r)
rustc: $(rustc -V)
redis-server: $(redis-server --version | awk '{print $3}' | sed 's/^v=//') (redis-benchmark $(redis-benchmark --version 2>/dev/null | awk '{print $2}'))
mode: $SETTINGS
runtime: run.sh $TOTAL_S s up to the report: build $BUILD_S s, criterion benches $BENCH_S s, redis-benchmark $REDIS_BENCH_S s, HTTP load $HTTP_S s
INFO

echo "==> report"
run "$TARGET/release/report" "$RUN" "$ROOT/benches"
echo "==> done in $(($(date +%s) - STARTED)) s: benches/RESULTS.md, benches/throughput.png"
