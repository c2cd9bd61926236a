#!/usr/bin/env bash
# A private PostgreSQL server for the tests.
#
#   tests/pg_server.sh start [--install]   start it (idempotent), ensure roles and database;
#                                          with --install (or ESRS_PG_INSTALL=1, or CI=true),
#                                          install PostgreSQL with apt-get if it is missing
#   tests/pg_server.sh stop                stop the server this script started
#   tests/pg_server.sh status              say whether a server answers
#
# The tests (ours and the reference's conformance suite) connect to
# 127.0.0.1:5432, database "eventsourcing" as user "eventsourcing" (password
# "eventsourcing"); some connect as the superuser "postgres" (password
# "postgres") to terminate other sessions. This script makes all of that true.
#
# Environment:
#   ESRS_PG_DATA   data directory (default /tmp/esrs-pg)
#   ESRS_PG_HOST   address to listen on and to check (default 127.0.0.1)
#   ESRS_PG_PORT   port (default 5432)
#   ESRS_PG_FSYNC  "on" for a durable server (fsync, synchronous_commit and
#                  full_page_writes on); by default they are off, for speed
#   ESRS_PG_SSL_CERT, ESRS_PG_SSL_KEY
#                  a server certificate and its key (PEM): the new cluster
#                  serves TLS with them (ssl = on)
#   PG_BIN         directory of initdb/pg_ctl/psql (default: the newest
#                  /usr/lib/postgresql/*/bin, else wherever pg_ctl is on PATH)
#
# If a server already answers on the address and port, it is used as it is:
# only the roles and the database are ensured (which needs the "postgres"
# password to be "postgres", or local access as the "postgres" OS user).
set -euo pipefail

DATA="${ESRS_PG_DATA:-/tmp/esrs-pg}"
HOST="${ESRS_PG_HOST:-127.0.0.1}"
PORT="${ESRS_PG_PORT:-5432}"
INSTALL_HINT="apt-get update && apt-get install -y postgresql   (Debian/Ubuntu; PostgreSQL 15 puts its programs in /usr/lib/postgresql/15/bin)"

say() { printf 'pg_server: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

find_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then
        [[ -x "$PG_BIN/pg_ctl" ]] || die "PG_BIN=$PG_BIN has no pg_ctl"
        return 0
    fi
    local candidate
    # Newest major version first: sort -V orders 9.6 < 10 < 15.
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$candidate/pg_ctl" ]]; then
            PG_BIN="$candidate"
            return 0
        fi
    done
    if command -v pg_ctl >/dev/null 2>&1; then
        PG_BIN="$(dirname "$(command -v pg_ctl)")"
        return 0
    fi
    return 1
}

ensure_installed() {
    local may_install="$1"
    if find_bin; then
        return 0
    fi
    if [[ "$may_install" == yes ]]; then
        [[ "$(id -u)" == 0 ]] || die "PostgreSQL is not installed and installing it needs root: $INSTALL_HINT"
        command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available"
        say "installing PostgreSQL with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        find_bin || die "PostgreSQL was installed but pg_ctl was not found"
        return 0
    fi
    die "PostgreSQL is not installed. Install it with: $INSTALL_HINT (or run '$0 start --install' as root)"
}

# postgres refuses to run as root: as root, the server runs as the OS user
# "postgres" (created if missing); as anyone else, as that user.
as_server_user() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

ensure_os_user() {
    [[ "$(id -u)" == 0 ]] || return 0
    if ! id postgres >/dev/null 2>&1; then
        say "creating OS user postgres"
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

answers() {
    "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PORT" -t 2 >/dev/null 2>&1
}

# Runs SQL as a superuser, by whichever way in works: our own server's
# socket, the password "postgres" over TCP, or the postgres OS user's socket.
superuser_psql() {
    local db="$1"
    shift
    if [[ -S "$DATA/.s.PGSQL.$PORT" ]] \
        && as_server_user "$PG_BIN/psql" -X -q -h "$DATA" -p "$PORT" -U postgres -d "$db" -c 'SELECT 1' >/dev/null 2>&1; then
        as_server_user "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DATA" -p "$PORT" -U postgres -d "$db" "$@"
    elif PGPASSWORD=postgres "$PG_BIN/psql" -X -q -h "$HOST" -p "$PORT" -U postgres -d "$db" -c 'SELECT 1' >/dev/null 2>&1; then
        PGPASSWORD=postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U postgres -d "$db" "$@"
    elif [[ "$(id -u)" == 0 ]] && id postgres >/dev/null 2>&1 \
        && runuser -u postgres -- "$PG_BIN/psql" -X -q -p "$PORT" -d "$db" -c 'SELECT 1' >/dev/null 2>&1; then
        runuser -u postgres -- "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d "$db" "$@"
    else
        return 1
    fi
}

ensure_roles_and_database() {
    if ! superuser_psql postgres -c 'SELECT 1' >/dev/null 2>&1; then
        if PGPASSWORD=eventsourcing "$PG_BIN/psql" -X -q -h "$HOST" -p "$PORT" -U eventsourcing -d eventsourcing -c 'SELECT 1' >/dev/null 2>&1; then
            say "no superuser access to the server on $HOST:$PORT, but user eventsourcing can connect to database eventsourcing; leaving it as it is"
            return 0
        fi
        die "a server answers on $HOST:$PORT but this script can't log in as a superuser to create the role and database"
    fi
    superuser_psql postgres <<'SQL'
ALTER ROLE postgres WITH LOGIN SUPERUSER PASSWORD 'postgres';
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eventsourcing') THEN
        CREATE ROLE eventsourcing;
    END IF;
END
$$;
ALTER ROLE eventsourcing WITH LOGIN PASSWORD 'eventsourcing';
SQL
    # CREATE DATABASE can't run inside a DO block (it refuses transactions).
    if [[ "$(superuser_psql postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = 'eventsourcing'")" != 1 ]]; then
        superuser_psql postgres -c 'CREATE DATABASE eventsourcing OWNER eventsourcing'
    fi
    # Since PostgreSQL 15 ordinary users may not create tables in "public"
    # unless granted; the tests create and drop their own tables there.
    superuser_psql eventsourcing <<'SQL'
GRANT ALL PRIVILEGES ON DATABASE eventsourcing TO eventsourcing;
GRANT ALL ON SCHEMA public TO eventsourcing;
SQL
}

init_cluster() {
    say "initialising a new cluster in $DATA"
    mkdir -p "$DATA"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$DATA"
    fi
    chmod 700 "$DATA"
    local pwfile
    pwfile="$(mktemp)"
    printf 'postgres\n' >"$pwfile"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$pwfile"
    fi
    as_server_user "$PG_BIN/initdb" -D "$DATA" -U postgres --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null \
        || { rm -f "$pwfile"; die "initdb failed"; }
    rm -f "$pwfile"
    # A throwaway test server: durability is worth nothing here, speed is
    # (ESRS_PG_FSYNC=on makes a durable one, for crash tests and durable
    # benchmark rows). Many connections: threaded tests hold one a thread.
    local durable=off
    if [[ "${ESRS_PG_FSYNC:-off}" == on ]]; then
        durable=on
    fi
    cat >>"$DATA/postgresql.conf" <<CONF

# Written by tests/pg_server.sh for a private test server.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$DATA'
max_connections = 300
fsync = $durable
synchronous_commit = $durable
full_page_writes = $durable
CONF
    if [[ -n "${ESRS_PG_SSL_CERT:-}" ]]; then
        # The server reads its key only if no one else may (0600, its owner).
        cp "$ESRS_PG_SSL_CERT" "$DATA/server.crt"
        cp "${ESRS_PG_SSL_KEY:?ESRS_PG_SSL_KEY must name the key of ESRS_PG_SSL_CERT}" "$DATA/server.key"
        chmod 600 "$DATA/server.key"
        if [[ "$(id -u)" == 0 ]]; then
            chown postgres: "$DATA/server.crt" "$DATA/server.key"
        fi
        printf 'ssl = on\n' >>"$DATA/postgresql.conf"
    fi
}

start() {
    local may_install=no
    # A fresh CI machine has nothing installed by hand: install there.
    if [[ "${ESRS_PG_INSTALL:-}" == 1 || "${CI:-}" == true ]]; then
        may_install=yes
    fi
    for arg in "$@"; do
        case "$arg" in
            --install) may_install=yes ;;
            *) die "unknown option: $arg" ;;
        esac
    done
    ensure_installed "$may_install"
    if answers; then
        say "a server already answers on $HOST:$PORT"
    else
        ensure_os_user
        if [[ -f "$DATA/PG_VERSION" ]]; then
            local have want
            have="$(cat "$DATA/PG_VERSION")"
            want="$("$PG_BIN/pg_ctl" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')"
            [[ "$have" == "$want" ]] || die "$DATA holds a PostgreSQL $have cluster but $PG_BIN is version $want: remove $DATA or set ESRS_PG_DATA"
        else
            init_cluster
        fi
        say "starting PostgreSQL ($PG_BIN) on $HOST:$PORT, data in $DATA"
        as_server_user "$PG_BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start >/dev/null \
            || { tail -n 20 "$DATA/server.log" >&2 || true; die "the server did not start"; }
        answers || die "the server started but does not answer on $HOST:$PORT"
    fi
    ensure_roles_and_database
    say "ready: postgresql://eventsourcing:eventsourcing@$HOST:$PORT/eventsourcing"
}

stop() {
    find_bin || die "PostgreSQL is not installed; nothing to stop"
    if [[ ! -f "$DATA/postmaster.pid" ]]; then
        say "no server of this script is running (no $DATA/postmaster.pid)"
        return 0
    fi
    as_server_user "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    say "stopped the server in $DATA"
}

status() {
    find_bin || die "PostgreSQL is not installed. Install it with: $INSTALL_HINT"
    if answers; then
        say "a server answers on $HOST:$PORT"
    else
        say "no server answers on $HOST:$PORT"
        return 3
    fi
}

case "${1:-start}" in
    start) shift || true; start "$@" ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start [--install] | stop | status" ;;
esac
