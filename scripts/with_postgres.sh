#!/usr/bin/env bash
# Run a command with a throw-away PostgreSQL server: `scripts/with_postgres.sh make test`.
#
# Installs PostgreSQL from the Debian packages when no server binaries are found, runs initdb in a
# temporary directory, starts the cluster on a free local port (as the `postgres` user when run as
# root: the server refuses to run as root), creates a database and a password-protected role,
# exports AGNT5_TEST_POSTGRES_URL (and AGNT5_REQUIRE_POSTGRES=1, so the suite fails rather than
# skips when the server is unusable), runs the command, then stops the server and deletes the
# directory. Exits with the command's status, or non-zero when the server cannot be started.
#
# With AGNT5_TEST_POSTGRES_URL already set (a server of your own), no server is started: the
# command runs against that one (each test uses a schema of its own and drops it).
set -euo pipefail

log() { echo "with_postgres: $*" >&2; }

if [[ -n "${AGNT5_TEST_POSTGRES_URL:-}" ]]; then
    log "using the server of AGNT5_TEST_POSTGRES_URL"
    export AGNT5_REQUIRE_POSTGRES=1
    exec "$@"
fi

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir)"
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    fi
    return 1
}

BINDIR="$(find_bindir || true)"
if [[ -z "$BINDIR" ]]; then
    log "PostgreSQL not found; installing it from the Debian packages"
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # Do not let the package start its own cluster (there may be no init system).
    $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    BINDIR="$(find_bindir || true)"
    if [[ -z "$BINDIR" ]]; then
        log "installing postgresql gave no server binaries"
        exit 1
    fi
fi

PYTHON="${PYTHON:-python3}"
PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/agnt5-pg.XXXXXX")"
DATA="$WORKDIR/data"
PASSWORD="$("$PYTHON" -c 'import secrets; print(secrets.token_hex(12))')"
DBNAME="agnt5_test"
ROLE="agnt5"

# As root, run the server as an unprivileged user (postgres, created by the Debian package).
AS=()
if [[ "$(id -u)" == 0 ]]; then
    RUNAS="${AGNT5_PG_USER:-postgres}"
    if ! id "$RUNAS" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$RUNAS"
    fi
    chown "$RUNAS" "$WORKDIR"
    AS=(runuser -u "$RUNAS" --)
fi
chmod 700 "$WORKDIR"

cleanup() {
    local status=$?
    if [[ -f "$DATA/postmaster.pid" ]]; then
        "${AS[@]}" "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORKDIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '%s\n' "$PASSWORD" >"$WORKDIR/pwfile"
chmod 600 "$WORKDIR/pwfile"
if [[ ${#AS[@]} -gt 0 ]]; then chown "$RUNAS" "$WORKDIR/pwfile"; fi

if ! "${AS[@]}" "$BINDIR/initdb" -D "$DATA" -U "$ROLE" --pwfile="$WORKDIR/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$WORKDIR/initdb.log" 2>&1; then
    cat "$WORKDIR/initdb.log" >&2
    log "initdb failed"
    exit 1
fi
rm -f "$WORKDIR/pwfile"

# Local sockets live in the work directory; TCP on 127.0.0.1 only, with password authentication.
if ! "${AS[@]}" "$BINDIR/pg_ctl" -D "$DATA" -l "$WORKDIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$WORKDIR -c max_connections=300 -c shared_buffers=128MB" \
    start >/dev/null; then
    cat "$WORKDIR/server.log" >&2 || true
    log "the PostgreSQL server did not start"
    exit 1
fi
if ! "${AS[@]}" "$BINDIR/createdb" -h "$WORKDIR" -p "$PORT" -U "$ROLE" "$DBNAME"; then
    cat "$WORKDIR/server.log" >&2 || true
    log "createdb failed"
    exit 1
fi

export AGNT5_TEST_POSTGRES_URL="postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DBNAME"
export AGNT5_REQUIRE_POSTGRES=1
log "PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (data in $DATA)"

set +e
"$@"
status=$?
set -e
exit "$status"
