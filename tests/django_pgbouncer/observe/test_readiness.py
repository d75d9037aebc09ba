"""Health probes and the status command against servers that go away: a private
stack whose PostgreSQL, then PgBouncer, the test stops."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from devstack.ephemeral import ephemeral_pgbouncer, ephemeral_stack
from devstack.process import Account
from devstack.stack import PROJECT_DIR, STATS_CONSOLE_USER, web_child
from django_pgbouncer.observe.readiness import (
    CACHE_SECONDS,
    ReadyStatus,
    readiness_check,
)
from tests.fixtures.stack import web_env

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def doomed():
    """PostgreSQL, PgBouncer (a pool of 1) and gunicorn of their own, to be broken."""
    with ephemeral_stack(
        "test-probes-", pgbouncer_variables={"DEFAULT_POOL_SIZE": "1"}
    ) as stack:
        web = web_child(stack, web_env(stack), account=Account())
        web.start()
        try:
            yield stack
        finally:
            web.stop()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def status_command(stack, *, without=()):
    env = {**web_env(stack), "DJANGO_SETTINGS_MODULE": "config.settings"}
    for name in without:
        env.pop(name)
    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "manage.py"), "pgbouncer_status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    return result.returncode, json.loads(result.stdout), result.stderr


def secrets_of(stack):
    return [stack.secrets["app_password"], stack.secrets["admin_console_password"]]


def test_each_probe_tells_what_broke(doomed):
    url = doomed.web_url
    # Everything up.
    assert get(url + "/healthz") == (200, {"status": "alive"})
    code, body = get(url + "/readyz")
    assert (code, body["status"], body["console"]) == (200, "ready", "ok")
    code, report, _ = status_command(doomed)
    assert (code, report["status"]) == (0, "ready")

    # The pool's one server connection held by a long transaction, a client waiting.
    holder = psycopg.connect(doomed.pooled_url.url())
    holder.execute("SELECT 1")  # a transaction stays open: the server stays taken

    def wait_for_a_server():
        with psycopg.connect(doomed.pooled_url.url(), autocommit=True) as conn:
            conn.execute("SELECT 1")

    waiter = threading.Thread(target=wait_for_a_server)
    waiter.start()
    try:
        time.sleep(1.5)
        code, body = get(url + "/readyz")
        assert (code, body["status"]) == (503, "pool_saturated")
        assert any("waiting" in t for p in body["pools"] for t in p["trouble"])
    finally:
        holder.rollback()
        holder.close()
        waiter.join(30)

    # PostgreSQL stops behind a running PgBouncer.
    doomed.postgres.stop()
    time.sleep(CACHE_SECONDS)  # each worker's last answer has expired
    assert get(url + "/healthz") == (200, {"status": "alive"})
    code, body = get(url + "/readyz")
    assert (code, body["status"], body["console"]) == (
        503,
        "postgres_unreachable",
        "ok",
    )
    code, report, stderr = status_command(doomed)
    assert (code, report["status"]) == (1, "postgres_unreachable")
    assert "not ready: postgres_unreachable" in stderr

    # PgBouncer stops too.
    doomed.pgbouncer.stop()
    time.sleep(CACHE_SECONDS)
    assert get(url + "/healthz") == (200, {"status": "alive"})
    code, body = get(url + "/readyz")
    assert (code, body["status"]) == (503, "pgbouncer_unreachable")
    assert "did not answer" in body["console"]
    code, report, stderr = status_command(doomed)
    assert (code, report["status"]) == (1, "pgbouncer_unreachable")
    for text in (json.dumps(body), json.dumps(report), stderr):
        for secret in secrets_of(doomed):
            assert secret not in text


def test_status_command_prints_a_table_for_people(stack, django_db_setup):
    env = {
        **web_env(stack),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "manage.py"), "pgbouncer_status"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("status:  ready")
    header = next(line for line in lines if line.startswith("database"))
    assert "cl_waiting" in header
    assert any(line.split()[:3] == ["app", "app", "transaction"] for line in lines)


def test_not_configured_is_a_state_not_an_error(stack, django_db_setup):
    code, report, _ = status_command(
        stack, without=["PGBOUNCER_ADMIN_URL", "PGBOUNCER_ADMIN_URLS"]
    )
    assert code == 0
    assert (report["status"], report["console"]) == ("ready", "not configured")


def test_an_outage_shorter_than_the_probe_is_seen(stack):
    """PostgreSQL stopped (SIGSTOP: logins hang) for less than the query's
    timeout: the query then succeeds, late, but PgBouncer's pool showed a client
    waiting with no server connection, and that is the answer."""
    variables = {
        "PGBOUNCER_ADMIN_URL": stack.admin_console_url.url(),
        "STATS_USERS": STATS_CONSOLE_USER,
    }
    # A PgBouncer of its own: no server connection yet, the query needs a login.
    with ephemeral_pgbouncer(stack, "test-short-outage-", variables=variables) as pgb:
        port = pgb.config.port
        url = stack.pooled_url.with_(port=port)
        conninfo = {
            "host": url.host,
            "port": url.port,
            "user": url.user,
            "password": url.password,
            "dbname": url.name,
        }
        admin_url = stack.admin_console_url.with_(port=port).url()
        postmaster = stack.postgres.child.pid
        os.kill(postmaster, signal.SIGSTOP)
        try:
            timer = threading.Timer(1.5, os.kill, (postmaster, signal.SIGCONT))
            timer.start()
            readiness = readiness_check(conninfo=conninfo, admin_url=admin_url)
        finally:
            timer.join()
            os.kill(postmaster, signal.SIGCONT)
        assert readiness.query == "ok"  # it came back within the timeout
        assert readiness.status == ReadyStatus.POSTGRES_UNREACHABLE
        assert readiness_check(conninfo=conninfo, admin_url=admin_url).ready
