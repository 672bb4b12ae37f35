#!/usr/bin/env bash
# What db-backup.sh and db-restore.sh share: reading DATABASE_URL, finding the MySQL/MariaDB
# client tools, a private client option file (so the password is never on a command line, where
# `ps` would show it) and the optional Pushgateway metric. Sourced, not run.

# db_parse_url URL: sets DB_USER, DB_PASSWORD, DB_HOST, DB_PORT and DB_NAME from
# mysql://USER:PASSWORD@HOST[:PORT]/DATABASE[?options], or exits 2 saying what is wrong.
db_parse_url() {
    local url="$1" rest userinfo hostport
    case "$url" in
        mysql://* | mariadb://*) rest="${url#*://}" ;;
        '')
            echo "db: DATABASE_URL is not set; expected mysql://user:password@host:port/database" >&2
            exit 2
            ;;
        *)
            echo "db: DATABASE_URL must start with mysql:// (backups are for MySQL/MariaDB; a SQLite file is copied with sqlite3 .backup)" >&2
            exit 2
            ;;
    esac
    rest="${rest%%\?*}"
    if [ "${rest#*@}" = "$rest" ] || [ "${rest#*/}" = "$rest" ]; then
        echo "db: DATABASE_URL lacks user@ or /database; expected mysql://user:password@host:port/database" >&2
        exit 2
    fi
    userinfo="${rest%@*}"
    rest="${rest##*@}"
    hostport="${rest%%/*}"
    DB_NAME="${rest#*/}"
    DB_USER="$(db_url_decode "${userinfo%%:*}")"
    if [ "${userinfo#*:}" != "$userinfo" ]; then
        DB_PASSWORD="$(db_url_decode "${userinfo#*:}")"
    else
        DB_PASSWORD=""
    fi
    DB_HOST="${hostport%%:*}"
    if [ "${hostport#*:}" != "$hostport" ]; then DB_PORT="${hostport#*:}"; else DB_PORT=3306; fi
    case "$DB_NAME" in
        '' | *[!A-Za-z0-9_]*)
            echo "db: database name '$DB_NAME' in DATABASE_URL: use letters, digits and _ only" >&2
            exit 2
            ;;
    esac
    case "$DB_PORT" in
        '' | *[!0-9]*)
            echo "db: port '$DB_PORT' in DATABASE_URL is not a number" >&2
            exit 2
            ;;
    esac
}

# Percent-decoding, as URLs carry passwords with @, : or / in them.
db_url_decode() {
    local s="${1//+/ }"
    printf '%b' "${s//%/\\x}"
}

# db_find_binary NAME...: the first of NAME... on PATH, or exits 1 with what to install.
db_find_binary() {
    local name
    for name in "$@"; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return
        fi
    done
    echo "db: none of $* is installed; install mariadb-client (or mysql-client)" >&2
    exit 1
}

# Prints the path of a fresh option file (mode 600) with the connection settings; the caller
# deletes it.
db_defaults_file() {
    local file
    file="$(mktemp "${TMPDIR:-/tmp}/db-client.XXXXXX")"
    chmod 600 "$file"
    # Option files take backslash escapes inside double quotes.
    local pw="${DB_PASSWORD//\\/\\\\}"
    pw="${pw//\"/\\\"}"
    printf '[client]\nuser="%s"\npassword="%s"\nhost="%s"\nport=%s\nprotocol=TCP\n' \
        "$DB_USER" "$pw" "$DB_HOST" "$DB_PORT" >"$file"
    printf '%s\n' "$file"
}

# db_push_metric success|failure STARTED: pushes the outcome to BACKUP_PUSHGATEWAY_URL when set.
# Best effort: a Pushgateway that is down must not turn a good backup into a failed job.
db_push_metric() {
    local outcome="$1" started="$2" now
    [ -n "${BACKUP_PUSHGATEWAY_URL:-}" ] || return 0
    now="$(date +%s)"
    if ! command -v curl >/dev/null 2>&1; then
        echo "db: BACKUP_PUSHGATEWAY_URL is set but curl is not installed; no metric pushed" >&2
        return 0
    fi
    printf '# TYPE db_backup_last_%s_timestamp_seconds gauge\ndb_backup_last_%s_timestamp_seconds %s\n# TYPE db_backup_last_duration_seconds gauge\ndb_backup_last_duration_seconds %s\n' \
        "$outcome" "$outcome" "$now" "$((now - started))" |
        curl --silent --show-error --fail --max-time 10 --data-binary @- \
            "${BACKUP_PUSHGATEWAY_URL%/}/metrics/job/db_backup/database/$DB_NAME" ||
        echo "db: could not push the backup metric to $BACKUP_PUSHGATEWAY_URL" >&2
}
