"""Configuration 4 of bench.harness: Django's native psycopg pool straight to
PostgreSQL. The site's settings have no variable for OPTIONS["pool"], so this module
takes them whole and changes only the database entry.

Run with DJANGO_SETTINGS_MODULE=bench.settings_native_pool, DATABASE_URL = the direct
URL, POOL_MODE=session.
"""

from __future__ import annotations

from config.env import web_threads
from config.settings import *  # noqa: F403
from config.settings import DATABASES

_default = DATABASES["default"]
# Straight to PostgreSQL, not through PgBouncer: no guard, no PgBouncer checks.
_default.pop("PGBOUNCER", None)
_default.pop("DISABLE_SERVER_SIDE_CURSORS", None)
_options = _default.setdefault("OPTIONS", {})
_options.pop("prepare_threshold", None)
# One pool per process (Django 5.1+), a connection for each of its gunicorn threads
# (GUNICORN_THREADS, default 4), so no thread waits for one: 2 workers x 4 = 8
# backends at most. A pool needs CONN_MAX_AGE = 0 (ImproperlyConfigured else).
_options["pool"] = {"min_size": 2, "max_size": web_threads()}
_default["CONN_MAX_AGE"] = 0
_default["CONN_HEALTH_CHECKS"] = False
