#!/bin/sh
# Run once by the mysql image's entrypoint, when mysql-replica's data directory is first
# initialised (docker-compose.yml, profile "replica"): follow the mysql service by GTID
# auto-position from its first transaction. The replica keeps replicating across restarts by
# itself; a stopped replica catches up when it starts again.
set -eu
# The password through the environment, not on a command line.
MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --protocol=socket --user=root <<SQL
CHANGE REPLICATION SOURCE TO
    SOURCE_HOST = 'mysql', SOURCE_PORT = 3306,
    SOURCE_USER = 'root', SOURCE_PASSWORD = '${MYSQL_ROOT_PASSWORD}',
    SOURCE_AUTO_POSITION = 1, GET_SOURCE_PUBLIC_KEY = 1, SOURCE_CONNECT_RETRY = 5;
START REPLICA;
SQL
