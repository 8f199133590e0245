#!/bin/sh
# One-shot job (image temporalio/admin-tools): creates and migrates Temporal's two PostgreSQL
# schemas before the server starts. Safe on every `docker compose up`: `setup-schema -v 0.0`
# leaves an initialised database alone and `update-schema` applies only the versions it has not
# applied yet, so upgrading the image upgrades the schema.
#
# The databases themselves and the role that owns them come from deploy/postgres-init.sql.
# temporal-sql-tool reads its connection from SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER and
# SQL_PASSWORD (set by docker-compose.yml).
set -eu

: "${SQL_PASSWORD:?SQL_PASSWORD must be set}"
: "${TEMPORAL_DB:=temporal}"
: "${TEMPORAL_VISIBILITY_DB:=temporal_visibility}"
: "${SCHEMA_DIR:=/etc/temporal/schema/postgresql/v12}"

migrate() {
    database=$1
    versions=$2
    echo "temporal-schema: migrating ${database} from ${versions}"
    temporal-sql-tool --db "${database}" setup-schema -v 0.0
    temporal-sql-tool --db "${database}" update-schema -d "${versions}"
}

migrate "${TEMPORAL_DB}" "${SCHEMA_DIR}/temporal/versioned"
migrate "${TEMPORAL_VISIBILITY_DB}" "${SCHEMA_DIR}/visibility/versioned"
echo "temporal-schema: done"
