"""Django settings for the pgbouncer-config job (deploy/entrypoint.sh).

`manage.py pgbouncer_config` reads PgBouncer's variables from the environment and
needs none of the site's settings; loading config.settings would demand
DJANGO_SECRET_KEY in a container that has no use for it.
"""

INSTALLED_APPS = ["django_pgbouncer"]
USE_TZ = True
