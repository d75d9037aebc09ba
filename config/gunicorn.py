"""gunicorn's settings, from the environment (`gunicorn -c config/gunicorn.py`)."""

import os
import sys
import tempfile
from pathlib import Path

from config.env import (
    env_bool,
    env_int,
    env_port,
    env_str,
    web_processes,
    web_threads,
)
from django_pgbouncer.errors import ConfigError

# A bad variable is one line naming it: gunicorn would print "Failed to read config
# file" and a traceback for any exception but SystemExit.
try:
    bind = f"{env_str('WEB_HOST', '127.0.0.1')}:{env_port('WEB_PORT', 8000)}"
    # Threads share a process's memory, and each keeps one persistent connection to
    # PgBouncer (CONN_MAX_AGE); PgBouncer, not gunicorn, bounds PostgreSQL's backends.
    worker_class = "gthread"
    workers = web_processes()
    threads = web_threads()
    # PgBouncer's QUERY_WAIT_TIMEOUT (10 s) is shorter: a saturated pool answers 503
    # well before this.
    timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
    graceful_timeout = 20
    # gunicorn's 2 s closes an idle keep-alive connection just as a busy client
    # reuses it: the client sees a failed read (bench.fanout, 256 threads: 1 to 2
    # per round at 2 s, none at 30 s). A proxy in front should let its idle
    # upstream connections go sooner than this.
    keepalive = 30
    preload_app = True
    accesslog = env_str("GUNICORN_ACCESS_LOG") or None
    wsgi_app = "config.wsgi:application"
    # gunicorn believes X-Forwarded-Proto from 127.0.0.1 by default and tells Django the
    # request came over HTTPS: any client of a proxy on this host could claim it. Only
    # behind a declared proxy (DJANGO_BEHIND_PROXY=1, as config/settings.py reads it),
    # from gunicorn's usual addresses or FORWARDED_ALLOW_IPS.
    forwarded_allow_ips = (
        os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
        if env_bool("DJANGO_BEHIND_PROXY", False)
        else ""
    )
except ConfigError as error:
    sys.exit(f"gunicorn: {error}")

# Metrics add up across workers: prometheus_client keeps each process's counters in
# this folder. Set before the app (and prometheus_client) is loaded.
_metrics_dir = Path(
    env_str("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="django-metrics-")
)
_metrics_dir.mkdir(parents=True, exist_ok=True)
for stale in _metrics_dir.glob("*.db"):  # a previous run's counters
    stale.unlink()
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined, no-untyped-call]
