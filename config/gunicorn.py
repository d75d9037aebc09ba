"""gunicorn's settings, from the environment (`gunicorn -c config/gunicorn.py`).

config/settings.py imports `workers` and `threads` for the connection budget check.
"""

from config.env import env_int, env_str

bind = f"{env_str('WEB_HOST', '127.0.0.1')}:{env_int('WEB_PORT', 8000, minimum=1)}"
# Threads share a process's memory, and each keeps one persistent connection to
# PgBouncer (CONN_MAX_AGE); PgBouncer, not gunicorn, bounds PostgreSQL's backends.
worker_class = "gthread"
workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
threads = env_int("GUNICORN_THREADS", 4, minimum=1)
# QUERY_WAIT_TIMEOUT (20 s) is shorter, so a saturated pool fails a request
# before the worker is killed.
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = 20
preload_app = True
accesslog = env_str("GUNICORN_ACCESS_LOG") or None
wsgi_app = "config.wsgi:application"
