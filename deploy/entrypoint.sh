#!/usr/bin/env bash
# The image's entry point (deploy/Dockerfile).
#   web               serve with gunicorn (the migrate job has run the migrations)
#   migrate           migrate over DIRECT_DATABASE_URL (the owner role), then exit
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
    exec gunicorn -c config/gunicorn.py "$@"
    ;;
  migrate)
    # manage.py migrate picks the direct alias by itself: lock_timeout and
    # CREATE INDEX CONCURRENTLY need a real session, which PgBouncer's
    # transaction pooling does not give.
    exec python manage.py migrate --noinput "$@"
    ;;
  pgbouncer-config)
    # The renderer reads its own variables; the site's settings (and the secret key
    # they require) stay out of this container.
    export DJANGO_SETTINGS_MODULE=deploy.render_settings
    # The version of the PgBouncer that reads the files (the edoburu/pgbouncer tag
    # in docker-compose.yaml): a key it does not know would stop it from starting.
    exec python manage.py pgbouncer_config --output-dir /pgbouncer \
      --pgbouncer-version "${PGBOUNCER_VERSION:-1.25.2}" "$@"
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
