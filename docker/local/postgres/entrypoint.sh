#!/bin/bash
# Entrypoint of pixpress/local-postgres: on an empty $PGDATA creates the cluster the
# way the official postgres image does (superuser POSTGRES_USER with POSTGRES_PASSWORD,
# database POSTGRES_DB, password auth over TCP), then runs the server in the foreground
# listening on every address. Any other command runs as given.
set -euo pipefail

if [[ ${1:-} != postgres ]]; then
    exec "$@"
fi
shift
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
socket_dir=/var/run/postgresql

if [[ ! -s $PGDATA/PG_VERSION ]]; then
    if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
        echo "local-postgres: POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [[ $POSTGRES_DB != postgres ]]; then
        pg_ctl -D "$PGDATA" -w -s -o "-c listen_addresses='' -c unix_socket_directories=$socket_dir" start
        psql -q -v ON_ERROR_STOP=1 --host="$socket_dir" --username="$POSTGRES_USER" --dbname=postgres \
            --set=db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
        pg_ctl -D "$PGDATA" -w -s -m fast stop
    fi
    echo "local-postgres: cluster created in $PGDATA (database $POSTGRES_DB)"
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$socket_dir" "$@"
