#!/usr/bin/env bash
# Backs up the calories database (MySQL 8 or MariaDB) into BACKUP_DIR: one consistent, compressed,
# checksummed, timestamped dump per run, and dumps older than the retention deleted.
#
#   DATABASE_URL=mysql://user:password@host:3306/calories scripts/db-backup.sh /backups
#
# Writes BACKUP_DIR/calories-<database>-<UTC time>.sql.gz and, beside it, the .sha256 file that
# marks it complete: the dump is written under a ".partial" name, flushed to disk (fsync), tested
# (gzip -t, and the dump's own "Dump completed" trailer), then renamed, and only then is its
# checksum written (under a temporary name, fsync, rename). A run that fails at any step (a full
# volume, a lost connection) deletes its partial file and exits non-zero, so no half file ever
# looks complete: scripts/db-restore.sh refuses a dump without its checksum.
#
# Settings (environment):
#   DATABASE_URL            the app's own setting: mysql://USER:PASSWORD@HOST[:PORT]/DATABASE
#                           (user and password percent-encoded as in the URL)
#   BACKUP_RETENTION_DAYS   dumps older than this many days are deleted after a good run (7)
#   BACKUP_PUSHGATEWAY_URL  optional: a Prometheus Pushgateway (http://host:9091); the run pushes
#                           db_backup_last_success_timestamp_seconds or
#                           db_backup_last_failure_timestamp_seconds, which the
#                           DatabaseBackupFailed and DatabaseBackupTooOld alerts read
#
# --single-transaction gives a consistent snapshot of InnoDB tables without locking the app out.
set -euo pipefail

usage() {
    echo "usage: DATABASE_URL=mysql://user:password@host:port/database $0 BACKUP_DIR" >&2
    exit 2
}
[ "$#" -eq 1 ] || usage
backup_dir="$1"
retention_days="${BACKUP_RETENTION_DAYS:-7}"
case "$retention_days" in
    '' | *[!0-9]*)
        echo "db-backup: BACKUP_RETENTION_DAYS=$retention_days is not a number of days" >&2
        exit 2
        ;;
esac

script_dir="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/db-common.sh
. "$script_dir/db-common.sh"
db_parse_url "${DATABASE_URL:-}"
dump_bin="$(db_find_binary mariadb-dump mysqldump)"

started="$(date +%s)"
partial=""
unverified=""
defaults=""
finish() {
    local status=$?
    if [ -n "$partial" ]; then rm -f "$partial" "$partial.sha256"; fi
    # A dump renamed but whose checksum could not be written is complete, but unverifiable.
    if [ -n "$unverified" ]; then rm -f "$unverified"; fi
    if [ -n "$defaults" ]; then rm -f "$defaults"; fi
    if [ "$status" -ne 0 ]; then
        echo "db-backup: FAILED (exit $status): no new backup was written; see the error above" >&2
        db_push_metric failure "$started"
    fi
    exit "$status"
}
trap finish EXIT

if [ ! -d "$backup_dir" ]; then
    echo "db-backup: $backup_dir is not a directory; create it (or mount the backup volume) first" >&2
    exit 1
fi
defaults="$(db_defaults_file)"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
name="calories-$DB_NAME-$stamp.sql.gz"
final="$backup_dir/$name"
partial="$backup_dir/.$name.partial"

echo "db-backup: dumping $DB_NAME from $DB_HOST:$DB_PORT into $final"
# --quick streams rows instead of buffering whole tables; --hex-blob keeps binary columns exact;
# no --databases, so the dump restores into a database of any name.
"$dump_bin" --defaults-extra-file="$defaults" --single-transaction --quick --hex-blob \
    --routines --triggers --no-tablespaces "$DB_NAME" | gzip -6 >"$partial"
sync "$partial"
gzip -t "$partial"
if ! gzip -dc "$partial" | tail -n 1 | grep -q '^-- Dump completed'; then
    echo "db-backup: the dump of $DB_NAME has no 'Dump completed' trailer: the dump tool stopped early" >&2
    exit 1
fi
mv "$partial" "$final"
unverified="$final"
checksum="$(cd "$backup_dir" && sha256sum "$name")"
printf '%s\n' "$checksum" >"$partial.sha256"
sync "$partial.sha256"
mv "$partial.sha256" "$final.sha256"
partial=""
unverified=""
sync "$backup_dir"

elapsed=$(($(date +%s) - started))
echo "db-backup: wrote $final ($(stat -c %s "$final") bytes) in ${elapsed}s"

# Retention only after a good run: a failing job must not also eat the last good backups.
find "$backup_dir" -maxdepth 1 -type f \( -name 'calories-*.sql.gz' -o -name 'calories-*.sql.gz.sha256' \) \
    -mtime "+$retention_days" -print -delete | sed 's/^/db-backup: retention deleted /'
db_push_metric success "$started"
