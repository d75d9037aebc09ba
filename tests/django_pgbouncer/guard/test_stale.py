"""The stale-connection check (django_pgbouncer/guard/stale.py) against a real
PgBouncer restart, under gunicorn; and on a descriptor above select()'s reach."""

import os
import resource
import select
import socket
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.signals import request_started
from django.db import OperationalError

from devstack.ephemeral import ephemeral_pgbouncer, ephemeral_stack
from devstack.process import Account, run_checked
from devstack.stack import PROJECT_DIR, web_child
from tests.fixtures.stack import default_alias_through, missing_servers, web_env

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


# select() takes descriptors below FD_SETSIZE (1024) only.
FD_SETSIZE = 1024


@pytest.fixture
def descriptors_above_1024():
    """More than 1024 descriptors open, as in a gthread worker with many keep-alive
    clients: the next socket this process opens gets a number of 1024 or more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FD_SETSIZE + 200
    if hard != resource.RLIM_INFINITY and hard < wanted + 100:
        missing_servers(f"RLIMIT_NOFILE's hard limit ({hard}) is under {wanted + 100}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted + 100), hard))
    held: list[int] = []

    def fill() -> None:
        """Take every free number below `wanted` (os.open takes the lowest free
        one); again before each connection, since a descriptor closed meanwhile
        (an object of an earlier test collected) frees a low number."""
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            if fd >= wanted:
                os.close(fd)
                return
            held.append(fd)

    fill()
    try:
        yield fill
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def kept_connection_closed_by_pgbouncer(conn, before_connect=lambda: None):
    """Open `conn`, keep it idle until PgBouncer closes it (client_idle_timeout);
    returns its descriptor. Waits by peeking at the socket, not with poll()."""
    before_connect()
    conn.ensure_connection()
    fd = conn.connection.pgconn.socket
    peek = socket.socket(fileno=os.dup(fd))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                return fd  # EOF, or PgBouncer's goodbye: closed by its side
            except BlockingIOError:
                time.sleep(0.2)
        pytest.fail("PgBouncer did not close the idle client within 15 s")
    finally:
        peek.close()


@pytest.mark.servers
def test_a_closed_kept_connection_above_descriptor_1024_is_replaced(
    stack, django_db_setup, descriptors_above_1024, django_db_blocker
):
    """Harm: select() cannot look at the descriptor at all (the old check raised
    ValueError, failing every request of the worker), and a query on the closed
    connection fails. Fix: the poll() check at request start replaces it."""
    with (
        ephemeral_pgbouncer(
            stack, "test-stale-fd-", variables={"CLIENT_IDLE_TIMEOUT": "1"}
        ) as bouncer,
        django_db_blocker.unblock(),
        default_alias_through(bouncer.config.port) as conn,
    ):
        fd = kept_connection_closed_by_pgbouncer(conn, descriptors_above_1024)
        assert fd >= FD_SETSIZE
        with pytest.raises(ValueError, match="filedescriptor out of range"):
            select.select([fd], [], [], 0)
        with pytest.raises(OperationalError), conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        conn.close()

        fd = kept_connection_closed_by_pgbouncer(conn, descriptors_above_1024)
        assert fd >= FD_SETSIZE
        request_started.send(sender=None)  # guard.stale's receiver runs
        assert conn.connection is None  # dropped before the request used it
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
