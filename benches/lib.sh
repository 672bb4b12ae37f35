# shellcheck shell=bash
# Shell helpers of benches/run.sh and benches/http.sh (sourced, not run): packages, free ports,
# a redis-server on loopback.

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs with apt-get every Debian package named after a command it provides that is missing:
#   ensure_packages redis-server:redis-server wrk:wrk ...
# (a path instead of a command is checked as a file). One apt-get update, only when needed.
ensure_packages() {
    local missing=() pair what package
    for pair in "$@"; do
        what=${pair%%:*}
        package=${pair#*:}
        if [[ $what == /* ]]; then
            [ -e "$what" ] && continue
        else
            command -v "$what" >/dev/null 2>&1 && continue
            # Debian puts mariadbd in /usr/sbin, off an ordinary user's PATH.
            [ -x "/usr/sbin/$what" ] && continue
        fi
        [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# A TCP port on 127.0.0.1 nothing listens on now (a server started on it can still lose a race;
# the callers retry).
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

# Starts redis-server on 127.0.0.1 (no persistence) in DIR; sets REDIS_PID and REDIS_PORT.
# The caller stops it (kill "$REDIS_PID").
start_redis() {
    local dir=$1 attempt
    REDIS_PID=
    for attempt in 1 2 3 4 5; do
        REDIS_PORT=$(free_port)
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$dir" --logfile "$dir/redis.log" &
        REDIS_PID=$!
        for _ in $(seq 100); do
            if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
                return 0
            fi
            sleep 0.1
        done
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=
    done
    echo "redis-server did not start after $attempt attempts; see $dir/redis.log" >&2
    return 1
}
