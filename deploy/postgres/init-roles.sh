#!/bin/sh
# PostgreSQL's first start (/docker-entrypoint-initdb.d): the per-service roles and databases of roles.sql, with
# the passwords docker-compose.yml passes in (FLOWDOCK_DB_PASSWORD_AUTH / _STORAGE / _SHARE / _DAV).
set -eu
psql --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --no-psqlrc \
  -v prefix="${FLOWDOCK_DB_PREFIX:-flowdock}" \
  -v auth_password="$FLOWDOCK_DB_PASSWORD_AUTH" \
  -v storage_password="$FLOWDOCK_DB_PASSWORD_STORAGE" \
  -v share_password="$FLOWDOCK_DB_PASSWORD_SHARE" \
  -v dav_password="$FLOWDOCK_DB_PASSWORD_DAV" \
  -f "${FLOWDOCK_ROLES_SQL:-/flowdock/roles.sql}"
