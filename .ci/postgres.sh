# Sourced by .ci/run: starts a throwaway PostgreSQL server on 127.0.0.1 for
# the update server's report-store tests and exports its DSN as
# OTASEAL_TEST_POSTGRES. stop_test_postgres stops the server and removes
# its data directory; the caller runs it on exit. PostgreSQL refuses to run as root,
# so initdb and pg_ctl run as the "postgres" user (Debian's package makes
# it) when CI runs as root.

pg_bindir() { # where Debian puts initdb and pg_ctl (/usr/lib/postgresql/N/bin)
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  command -v pg_ctl >/dev/null && dirname "$(command -v pg_ctl)" && return 0
  return 1
}

pg_free_port() { # a TCP port nobody listens on, from the kernel
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

start_test_postgres() {
  local bindir port as=()
  bindir="$(pg_bindir)" || { echo "postgres: initdb/pg_ctl not found"; return 1; }
  if [ "$(id -u)" -eq 0 ]; then
    as=(runuser -u postgres --)
  fi
  PG_TEST_DIR="$(mktemp -d /tmp/otaseal-pg.XXXXXX)"
  chmod 755 "$PG_TEST_DIR"
  [ "${#as[@]}" -gt 0 ] && chown postgres: "$PG_TEST_DIR"
  port="$(pg_free_port)"
  "${as[@]}" "$bindir/initdb" -D "$PG_TEST_DIR/data" -U otaseal --auth=trust -E UTF8 --no-sync >/dev/null
  "${as[@]}" "$bindir/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $PG_TEST_DIR -c max_connections=300 -c fsync=on" start >/dev/null
  PG_TEST_STOP=("${as[@]}" "$bindir/pg_ctl" -D "$PG_TEST_DIR/data" -m immediate -w stop)
  export OTASEAL_TEST_POSTGRES="postgres://otaseal@127.0.0.1:$port/postgres?sslmode=disable"
  echo "postgres on 127.0.0.1:$port ($bindir)"
}

stop_test_postgres() {
  if [ -n "${PG_TEST_DIR:-}" ]; then
    "${PG_TEST_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$PG_TEST_DIR"
    PG_TEST_DIR=""
  fi
}
