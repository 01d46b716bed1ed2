#!/usr/bin/env bash
# Entry point of local/postgres:15, after the official postgres image's docker-entrypoint.sh: on an empty PGDATA,
# initdb as POSTGRES_USER, allow TCP clients by password (scram-sha-256) or POSTGRES_HOST_AUTH_METHOD, create
# POSTGRES_DB, run /docker-entrypoint-initdb.d/*.{sh,sql,sql.gz}, then exec the server. A data directory that
# already holds a cluster is used as it is.
#
# The init phase runs a temporary server with no TCP listener and its socket in a private directory, so neither
# `pg_isready` (the HEALTHCHECK) nor a client probing 5432 or /var/run/postgresql can mistake it for the final one.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

# VAR_FILE=/run/secrets/x sets VAR from that file (Docker secrets); setting both is an error, as upstream.
file_env() {
    local var="$1" def="${2:-}" file_var="${1}_FILE"
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        log "error: both $var and $file_var are set (but are exclusive)"
        exit 1
    fi
    local val="$def"
    if [ -n "${!var:-}" ]; then
        val="${!var}"
    elif [ -n "${!file_var:-}" ]; then
        val="$(<"${!file_var}")"
    fi
    export "$var"="$val"
    unset "$file_var"
}

run_init_file() {
    local f="$1"
    case "$f" in
        *.sh)
            if [ -x "$f" ]; then
                log "running $f"
                "$f"
            else
                log "sourcing $f"
                # shellcheck disable=SC1090
                . "$f"
            fi
            ;;
        *.sql) log "running $f"; psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname "$POSTGRES_DB" -f "$f" ;;
        *.sql.gz) log "running $f"; gunzip -c "$f" | psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname "$POSTGRES_DB" ;;
        *) log "ignoring $f" ;;
    esac
}

init_cluster() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    local auth="${POSTGRES_HOST_AUTH_METHOD:-}"
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
        cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser. For example,
       "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all connections without a password.
       This is *not* recommended.
MSG
        exit 1
    fi
    auth="${auth:-scram-sha-256}"

    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA" 2>/dev/null || true
    local pwfile pwargs=()
    pwfile="$(mktemp /tmp/pg-init-pw.XXXXXX)"
    if [ -n "$POSTGRES_PASSWORD" ]; then
        printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
        pwargs=(--pwfile="$pwfile")
    fi
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments, as upstream splits it
    initdb --username="$POSTGRES_USER" "${pwargs[@]}" $POSTGRES_INITDB_ARGS
    rm -f "$pwfile"
    # initdb's pg_hba.conf trusts the local socket and loopback; everyone else needs the password.
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

    local sockdir
    sockdir="$(mktemp -d /tmp/pg-init.XXXXXX)"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories='$sockdir'" start
    export PGHOST="$sockdir" PGPORT=5432 PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD"
    psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue
        run_init_file "$f"
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGHOST PGPORT PGUSER PGPASSWORD
    rm -rf "$sockdir"
    log "PostgreSQL init process complete; ready for start up."
}

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_cluster
fi
exec "$@"
