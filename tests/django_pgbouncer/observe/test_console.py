"""The admin console client: typed SHOW rows, and control commands."""

import time

import psycopg
import pytest

from django_pgbouncer import ConsoleUnavailable
from django_pgbouncer.observe import console_command, console_connect, console_show
from django_pgbouncer.observe.console import Pool

pytestmark = pytest.mark.servers


def maintenance_url(stack):
    """The console user that may PAUSE and RECONNECT (admin_users); the site's,
    stack.admin_console_url, may only read."""
    return stack.maintenance_console_url.url()


def server_pid(stack):
    with psycopg.connect(stack.pooled_url.url()) as conn:
        (pid,) = conn.execute("SELECT pg_backend_pid()").fetchall()
    return pid[0]


def test_show_returns_typed_rows(stack):
    server_pid(stack)  # PgBouncer makes a pool at its first client
    pools = console_show(stack.admin_console_url.url(), "POOLS")
    assert all(isinstance(p, Pool) for p in pools)
    assert any(p.database == "app" and p.pool_mode == "transaction" for p in pools)


def test_reconnect_replaces_the_server_connections(stack, superuser_conn):
    before = server_pid(stack)
    assert server_pid(stack) == before  # an idle server connection is reused
    console_command(maintenance_url(stack), "reconnect", "app")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = superuser_conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [before]
        ).fetchall()
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, "RECONNECT left the old server connection open"
    assert server_pid(stack) != before


@pytest.mark.parametrize(
    ("verb", "database"),
    [("SHUTDOWN", None), ("RELOAD", None), ("RECONNECT", "app; SHUTDOWN")],
    ids=["shutdown", "reload", "injected-name"],
)
def test_commands_outside_the_list_are_refused(stack, verb, database):
    with (
        pytest.raises(ValueError, match="is not"),
        console_connect(stack.admin_console_url.url()) as console,
    ):
        console.command(verb, database)


def test_an_unreachable_console_names_no_password(stack):
    from devstack.process import port_pick

    url = stack.admin_console_url.with_(port=port_pick(), password="Very-Secret-1")
    with pytest.raises(ConsoleUnavailable) as caught:
        console_show(url.url(), "POOLS")
    assert "Very-Secret-1" not in str(caught.value)
    assert "did not answer" in str(caught.value)


def database_paused(stack, name="app"):
    (paused,) = [
        d.paused
        for d in console_show(stack.admin_console_url.url(), "DATABASES")
        if d.name == name
    ]
    return paused


def test_pause_answers_once_the_pool_is_paused(stack):
    server_pid(stack)
    with console_connect(maintenance_url(stack)) as console:
        try:
            assert console.pause("app", timeout=10) is True
            assert database_paused(stack) == 1
        finally:
            console.command("RESUME", "app")
    assert database_paused(stack) == 0


@pytest.mark.parametrize("by", ["timeout", "cancelled"])
def test_a_pause_given_up_closes_its_console_and_stays_until_resumed(stack, by):
    with psycopg.connect(stack.pooled_url.url()) as holder:
        holder.execute("SELECT 1")  # a transaction in flight: PAUSE waits for it
        try:
            with console_connect(maintenance_url(stack)) as console:
                if by == "timeout":
                    paused = console.pause("app", timeout=0.5)
                else:
                    paused = console.pause("app", timeout=30, cancelled=lambda: True)
                assert paused is False
                with pytest.raises(psycopg.OperationalError, match="closed"):
                    console.show("POOLS")
            assert database_paused(stack) == 1  # held until someone resumes
        finally:
            console_command(maintenance_url(stack), "RESUME", "app")
        holder.commit()
    assert database_paused(stack) == 0
    assert server_pid(stack)


def test_a_refused_pause_raises_what_pgbouncer_answered(stack):
    with console_connect(maintenance_url(stack)) as console:
        try:
            assert console.pause(timeout=10) is True
            with pytest.raises(psycopg.Error, match="already") as caught:
                console.pause(timeout=5)  # a second PAUSE of everything is refused
            assert caught.value.sqlstate == "08P01"
        finally:
            console.command("RESUME")  # the console is still usable
    assert server_pid(stack)
