#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for the store tests.
#
#   scripts/pg-test-cluster.sh start DIR   initdb (if needed) and start; prints the URL
#   scripts/pg-test-cluster.sh stop DIR    stop the server and remove DIR/data
#
# PostgreSQL refuses to run as root (and the tests run as root), so the data directory
# DIR/data belongs to the `postgres` system user and the server runs as that user through
# `runuser`. The server listens on 127.0.0.1 only, on a free port picked at start, with its
# unix socket in DIR/data; trust authentication for loopback (a test cluster, nothing
# else). fsync stays on: the tests check durability semantics.
#
# DIR/url holds "postgresql://postgres@127.0.0.1:PORT/postgres" once the server accepts
# connections. Idempotent (start on a running cluster prints its URL; stop on a stopped
# one does nothing) and independent per DIR, so build directories do not interfere.
# Without the PostgreSQL binaries, start writes the reason to DIR/url.unavailable and exits
# 3 (0 when AUTOMAN_PG_MISSING_OK=1, as the ctest fixture runs it: the tests then skip).
# A file lock (DIR.lock) serialises start/stop on one DIR.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

PGBIN=${AUTOMAN_PG_BIN:-/usr/lib/postgresql/15/bin}
data="$dir/data"

# fd 9 (the lock) is closed for every command: the server must not inherit it.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@" 9>&-
  else
    "$@" 9>&-  # already an unprivileged user: run the cluster as ourselves
  fi
}

running() {
  [ -f "$data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data="$dir/data"
exec 9>"$dir.lock"
flock 9

case "$cmd" in
  start)
    rm -f "$dir/url.unavailable"
    for tool in initdb pg_ctl; do
      if [ ! -x "$PGBIN/$tool" ]; then
        why="$PGBIN/$tool not found (apt-get install postgresql, or scripts/deps.sh)"
        echo "pg-test-cluster: $why" >&2
        rm -f "$dir/url"
        echo "$why" >"$dir/url.unavailable"
        # The tests read url.unavailable and skip, saying why.
        [ "${AUTOMAN_PG_MISSING_OK:-0}" = 1 ] && exit 0
        exit 3
      fi
    done
    if running && [ -s "$dir/url" ]; then
      cat "$dir/url"
      exit 0
    fi
    rm -f "$dir/url"
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres: "$dir"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
      rm -rf "$data"
      # --no-sync: only initdb's final flush of a throw-away cluster; the server fsyncs.
      as_pg "$PGBIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # A port taken between picking and binding makes the start fail: try a few.
    for attempt in 1 2 3 4 5; do
      port=$(free_port)
      if as_pg "$PGBIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
          -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$data \
              -c fsync=on -c max_connections=200 -c shared_buffers=32MB" \
          start >/dev/null 2>&1; then
        url="postgresql://postgres@127.0.0.1:$port/postgres"
        echo "$url" >"$dir/url.tmp"
        mv "$dir/url.tmp" "$dir/url"
        echo "$url"
        exit 0
      fi
      running && as_pg "$PGBIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    done
    echo "pg-test-cluster: could not start PostgreSQL; last lines of $dir/server.log:" >&2
    tail -20 "$dir/server.log" >&2 || true
    exit 1
    ;;
  stop)
    if running; then
      as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    fi
    rm -rf "$data" "$dir/url"
    ;;
  *)
    usage
    ;;
esac
