#!/usr/bin/env bash
# The image's entry point (deploy/Dockerfile).
#   web               migrate over DIRECT_DATABASE_URL, then serve with gunicorn
#   pgbouncer-config  write pgbouncer.ini and userlist.txt into /pgbouncer, then exit
#   anything else     run as given, e.g. `python manage.py createsuperuser`
set -euo pipefail

cd "$(dirname "$0")/.."

command="${1:-web}"
if (($# > 0)); then
  shift
fi

case "$command" in
  web)
    # manage.py migrate picks the direct alias by itself: lock_timeout and
    # CREATE INDEX CONCURRENTLY need a real session, which PgBouncer's
    # transaction pooling does not give.
    python manage.py migrate --noinput
    exec gunicorn -c config/gunicorn.py "$@"
    ;;
  pgbouncer-config)
    # The version of the PgBouncer that reads the files (the edoburu/pgbouncer tag
    # in docker-compose.yaml): a key it does not know would stop it from starting.
    exec python manage.py pgbouncer_config --output-dir /pgbouncer \
      --pgbouncer-version "${PGBOUNCER_VERSION:-1.25.2}" "$@"
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
