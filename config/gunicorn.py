"""gunicorn's settings, from the environment (`gunicorn -c config/gunicorn.py`)."""

import os

bind = f"{os.environ.get('WEB_HOST', '127.0.0.1')}:{os.environ.get('WEB_PORT', '8000')}"
# Threads share a process's memory, and each keeps one persistent connection to
# PgBouncer (CONN_MAX_AGE); PgBouncer, not gunicorn, bounds PostgreSQL's backends.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# QUERY_WAIT_TIMEOUT (20 s) is shorter, so a saturated pool fails a request
# before the worker is killed.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
preload_app = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
wsgi_app = "config.wsgi:application"
