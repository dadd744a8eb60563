#!/usr/bin/env bash
# tests/pg.sh: a throwaway PostgreSQL cluster for the catalog tests (DEPENDENCIES.md, "Services").
#   tests/pg.sh start          start a cluster in a new temp dir on 127.0.0.1 and a free port;
#                              prints two lines: the conninfo
#                              (postgres://postgres@127.0.0.1:PORT/postgres) and the dir
#   tests/pg.sh stop DIR       stop the cluster in DIR and remove DIR
#   tests/pg.sh down DIR       stop the server at once (as a crash would), keeping DIR
#   tests/pg.sh up DIR         start it again on the same port (the blackbox outage tests)
#   tests/pg.sh run CMD...     start, run CMD with INGOT_TEST_POSTGRES=<conninfo> in its
#                              environment, stop; exits with CMD's status
# The cluster trusts local connections, runs with fsync=off and lives only as long as its dir.
# initdb refuses to run as root, so as root the server runs as the `postgres` user.
set -u

pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$d" ] && [ -x "$d/initdb" ] || { echo "pg.sh: no PostgreSQL server (apt-get install -y postgresql)" >&2; return 1; }
    echo "$d"
}

as_pg() { # run a command as the cluster's owner
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

server_up() { # $1 = bin, $2 = dir, $3 = port
    as_pg "$1/pg_ctl" -D "$2/data" -l "$2/log" -w -t 30 \
        -o "-k $2 -c listen_addresses=127.0.0.1 -p $3 -c fsync=off -c full_page_writes=off" \
        start >/dev/null 2>&1
}

start() {
    local bin dir port try
    bin=$(pg_bin) || return 1
    dir=$(mktemp -d /tmp/ingot_pg_XXXXXX) || return 1
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if ! as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1; then
        echo "pg.sh: initdb failed:" >&2; cat "$dir/initdb.log" >&2; rm -rf "$dir"; return 1
    fi
    for try in 1 2 3; do
        port=$(free_port) || return 1
        if server_up "$bin" "$dir" "$port"; then
            echo "$port" >"$dir/port"
            echo "postgres://postgres@127.0.0.1:$port/postgres"
            echo "$dir"
            return 0
        fi
    done
    echo "pg.sh: pg_ctl start failed:" >&2; tail -20 "$dir/log" >&2; rm -rf "$dir"
    return 1
}

stop() {
    local bin dir=$1
    case $dir in /tmp/ingot_pg_*) ;; *) echo "pg.sh: refusing to stop $dir" >&2; return 1 ;; esac
    bin=$(pg_bin) || return 1
    [ -d "$dir/data" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
    rm -rf "$dir"
}

in_tmp() {
    case $1 in /tmp/ingot_pg_*) ;; *) echo "pg.sh: refusing to touch $1" >&2; return 1 ;; esac
}

case ${1:-} in
start) start ;;
stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
down)
    [ $# -eq 2 ] && in_tmp "$2" || { echo "usage: $0 down DIR" >&2; exit 2; }
    bin=$(pg_bin) || exit 1
    as_pg "$bin/pg_ctl" -D "$2/data" -m immediate -w stop >/dev/null 2>&1
    ;;
up)
    [ $# -eq 2 ] && in_tmp "$2" || { echo "usage: $0 up DIR" >&2; exit 2; }
    bin=$(pg_bin) || exit 1
    server_up "$bin" "$2" "$(cat "$2/port")" || { echo "pg.sh: restart failed:" >&2; tail -20 "$2/log" >&2; exit 1; }
    ;;
run)
    shift
    [ $# -ge 1 ] || { echo "usage: $0 run CMD..." >&2; exit 2; }
    out=$(start) || exit 1
    conninfo=$(echo "$out" | sed -n 1p)
    dir=$(echo "$out" | sed -n 2p)
    trap 'stop "$dir"' EXIT
    trap 'exit 130' INT TERM
    INGOT_TEST_POSTGRES=$conninfo "$@"
    ;;
*) echo "usage: $0 start | stop DIR | down DIR | up DIR | run CMD..." >&2; exit 2 ;;
esac
