"""The stale-connection check (django_pgbouncer/guard/stale.py) against a real
PgBouncer restart, under gunicorn."""

import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.ephemeral import ephemeral_stack
from devstack.process import Account, run_checked
from devstack.stack import PROJECT_DIR, web_child
from tests.fixtures.stack import web_env

pytestmark = pytest.mark.servers


def statuses(url, count):
    codes = []
    for _ in range(count):
        try:
            with urllib.request.urlopen(url, timeout=15) as response:
                codes.append(response.status)
        except urllib.error.HTTPError as error:
            codes.append(error.code)
    return codes


def test_a_pgbouncer_restart_costs_no_failed_request():
    """Kept connections without Django's health check: after PgBouncer restarts,
    every gunicorn thread's connection is dead, and guard.stale replaces
    each before its request uses it."""
    with ephemeral_stack("test-restart-") as stack:
        env = {
            **web_env(stack),
            "CONN_HEALTH_CHECKS": "0",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": "4",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        run_checked(
            [sys.executable, str(PROJECT_DIR / "manage.py"), "migrate", "-v", "0"],
            what="migrate",
            env=env,
        )
        web = web_child(stack, env, account=Account())
        web.start()
        try:
            home = stack.web_url + "/"
            with ThreadPoolExecutor(4) as pool:  # every thread holds a connection
                before = list(pool.map(lambda _: statuses(home, 3), range(4)))
            assert before == [[200] * 3] * 4
            stack.pgbouncer.stop()
            stack.pgbouncer.start()
            with ThreadPoolExecutor(4) as pool:
                after = list(pool.map(lambda _: statuses(home, 3), range(4)))
            assert after == [[200] * 3] * 4
        finally:
            web.stop()
