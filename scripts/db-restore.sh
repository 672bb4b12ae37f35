#!/usr/bin/env bash
# Restores a dump made by db-backup.sh into the database DATABASE_URL names, after proving the
# file whole: it must exist, have its .sha256 beside it, match that checksum, decompress, and end
# with the dump tool's "Dump completed" trailer. Any doubt stops the restore before the database
# is touched.
#
#   DATABASE_URL=mysql://user:password@host:3306/calories scripts/db-restore.sh FILE.sql.gz
#   ... scripts/db-restore.sh --replace FILE.sql.gz    # into a database that already has tables
#
# The target database must exist (CREATE DATABASE calories CHARACTER SET utf8mb4; the app's user
# rarely may create one). Without --replace, a target that already holds tables is refused: the
# dump drops and recreates each of its tables, which is what you want after a loss and the last
# thing you want by mistake. Stop the app (or scale it to 0) first, so that nothing writes while
# the tables are replaced, and flush the cache afterwards (FLUSHDB on its Redis database), so that
# no value computed from the lost data is served.
set -euo pipefail

usage() {
    echo "usage: DATABASE_URL=mysql://user:password@host:port/database $0 [--replace] FILE.sql.gz" >&2
    exit 2
}
replace=false
if [ "${1:-}" = "--replace" ]; then
    replace=true
    shift
fi
[ "$#" -eq 1 ] || usage
file="$1"

script_dir="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/db-common.sh
. "$script_dir/db-common.sh"
db_parse_url "${DATABASE_URL:-}"
client_bin="$(db_find_binary mariadb mysql)"

refuse() {
    echo "db-restore: REFUSED, the database was not touched: $*" >&2
    exit 1
}

# --- The file, proven whole before anything else ---------------------------------------------------
[ -f "$file" ] || refuse "$file does not exist"
[ -f "$file.sha256" ] ||
    refuse "$file has no $file.sha256 beside it: an unfinished or foreign backup; pick another"
want="$(cut -d ' ' -f 1 <"$file.sha256")"
have="$(sha256sum "$file" | cut -d ' ' -f 1)"
[ "$want" = "$have" ] ||
    refuse "$file does not match its checksum (file $have, $file.sha256 says $want): it is corrupt or truncated; pick another"
gzip -t "$file" 2>/dev/null || refuse "$file is not a whole gzip stream (truncated or corrupt)"
gzip -dc "$file" | tail -n 1 | grep -q '^-- Dump completed' ||
    refuse "$file does not end with the dump's 'Dump completed' line: the dump was cut short"

started="$(date +%s)"
defaults=""
cleanup() { if [ -n "$defaults" ]; then rm -f "$defaults"; fi; }
trap cleanup EXIT
defaults="$(db_defaults_file)"

# --- The target ------------------------------------------------------------------------------------
tables="$("$client_bin" --defaults-extra-file="$defaults" --batch --skip-column-names "$DB_NAME" \
    -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()")" ||
    refuse "cannot reach database $DB_NAME on $DB_HOST:$DB_PORT (does it exist? CREATE DATABASE $DB_NAME CHARACTER SET utf8mb4)"
if [ "$tables" != "0" ] && [ "$replace" != true ]; then
    refuse "database $DB_NAME on $DB_HOST:$DB_PORT already holds $tables tables; run again with --replace to overwrite them"
fi

echo "db-restore: restoring $file into $DB_NAME on $DB_HOST:$DB_PORT"
gzip -dc "$file" | "$client_bin" --defaults-extra-file="$defaults" --binary-mode "$DB_NAME"
echo "db-restore: restored $file into $DB_NAME in $(($(date +%s) - started))s"
