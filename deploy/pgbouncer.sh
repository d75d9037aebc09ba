#!/bin/sh
# The pgbouncer service's entry point (docker-compose.yaml; the image's sh is
# busybox's): PGBOUNCER_PROCESSES PgBouncer processes (default 1) on one port, all
# reading the one pgbouncer.ini and userlist.txt that the pgbouncer-config job
# rendered (one SCRAM verifier per role). With more than one, pgbouncer.ini must
# say so_reuseport = 1 (SO_REUSEPORT=1 for the job): the kernel then spreads new
# connections over them. Each process has a folder of its own,
# PGBOUNCER_RUN_DIR/<i>, with its Unix socket (two processes cannot share a socket
# path) and its pid file; a volume shares that folder with the web container,
# which reaches each process's console there (PGBOUNCER_ADMIN_URLS), since the
# shared TCP port lands on any one of them.
#
#   pgbouncer.sh           run them; a process that exits is started again
#   pgbouncer.sh restart   restart them one at a time, each once the one before is
#                          back: docker compose exec pgbouncer /pgbouncer.sh restart
#
# A process is stopped with SIGINT: on 1.18 PAUSE, then exit once its
# transactions are done; from 1.23 it also stops listening first, so new clients
# go to the others. Its clients reconnect, to another process.
set -eu

ini="${PGBOUNCER_INI:-/pgbouncer/pgbouncer.ini}"
run_dir="${PGBOUNCER_RUN_DIR:-/run/pgbouncer}"
count="${PGBOUNCER_PROCESSES:-1}"
# How long a restarted process may take to be back (its socket answering).
wait_seconds=30

fail() {
  echo "pgbouncer.sh: $*" >&2
  exit 1
}

case "$count" in
  '' | *[!0-9]*) fail "PGBOUNCER_PROCESSES=$count is not a count; set it to 1 to 64." ;;
esac
if [ "$count" -lt 1 ] || [ "$count" -gt 64 ]; then
  fail "PGBOUNCER_PROCESSES=$count is out of range; set it to 1 to 64."
fi

socket_of() {
  port=$(sed -n 's/^listen_port *= *\([0-9]*\).*/\1/p' "$ini" | tail -n 1)
  echo "$run_dir/$1/.s.PGSQL.${port:-6432}"
}

pid_of() {
  cat "$run_dir/$1/pgbouncer.pid" 2>/dev/null || true
}

# Wait until process $1 runs with a pid other than $2 and its socket exists.
back_wait() {
  tries=$((wait_seconds * 10))
  while [ "$tries" -gt 0 ]; do
    pid=$(pid_of "$1")
    if [ -n "$pid" ] && [ "$pid" != "$2" ] && [ -S "$(socket_of "$1")" ]; then
      return 0
    fi
    tries=$((tries - 1))
    sleep 0.1
  done
  fail "PgBouncer process $1 is not back after ${wait_seconds} s; see the container's log."
}

if [ "${1:-}" = restart ]; then
  i=1
  while [ "$i" -le "$count" ]; do
    old=$(pid_of "$i")
    [ -n "$old" ] || fail "PgBouncer process $i is not running (no $run_dir/$i/pgbouncer.pid)."
    kill -INT "$old"
    back_wait "$i" "$old"
    echo "PgBouncer process $i restarted (pid $old -> $(pid_of "$i"))."
    i=$((i + 1))
  done
  exit 0
fi

if [ "$count" -eq 1 ]; then
  exec pgbouncer "$ini"
fi
grep -Eq '^so_reuseport *= *1' "$ini" ||
  fail "PGBOUNCER_PROCESSES=$count needs so_reuseport = 1 in $ini: set SO_REUSEPORT=1 for the pgbouncer-config job and run it again, or set PGBOUNCER_PROCESSES=1."

rm -f "$run_dir/stopping"
# Process $1, started again whenever it exits, until the container stops.
slot() {
  folder="$run_dir/$1"
  mkdir -p "$folder"
  # The shared file ends in its [pgbouncer] section: these keys continue it and
  # win. (A second [pgbouncer] header would reset the rest to their defaults.)
  printf '%%include %s\nunix_socket_dir = %s\npidfile = %s\n' \
    "$ini" "$folder" "$folder/pgbouncer.pid" >"$folder/pgbouncer.ini"
  while [ ! -e "$run_dir/stopping" ]; do
    pgbouncer "$folder/pgbouncer.ini" || sleep 1
  done
}

stop_all() {
  touch "$run_dir/stopping"
  i=1
  while [ "$i" -le "$count" ]; do
    pid=$(pid_of "$i")
    [ -z "$pid" ] || kill -INT "$pid" 2>/dev/null || true
    i=$((i + 1))
  done
  wait
  exit 0
}
trap stop_all INT TERM

i=1
while [ "$i" -le "$count" ]; do
  slot "$i" &
  i=$((i + 1))
done
wait
