#!/bin/bash
# Like the official postgres image's entrypoint, for what docker-compose.yml uses: on the first
# start of an empty PGDATA, initdb with POSTGRES_USER (superuser) / POSTGRES_PASSWORD and create
# POSTGRES_DB; every start: run `postgres` as the postgres user (exec, so signals reach it).
set -euo pipefail
if [ "${1:-}" = "postgres" ] || [ "${1:0:1}" = "-" ]; then
  [ "${1:-}" = "postgres" ] && shift
  PGDATA=${PGDATA:-/var/lib/postgresql/data}
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
  fi
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
      echo "postgres: POSTGRES_PASSWORD must be set (as in the official image)" >&2
      exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.auto.conf"
    if [ "$db" != "postgres" ]; then
      echo "CREATE DATABASE \"$db\" OWNER \"$user\"" | postgres --single -D "$PGDATA" -j postgres >/dev/null
    fi
    echo "postgres: initialised $PGDATA (user $user, database $db)" >&2
  fi
  exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
