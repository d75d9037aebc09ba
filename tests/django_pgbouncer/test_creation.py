"""Test databases through PgBouncer: the server session PgBouncer keeps after its
client has gone stops PostgreSQL from copying or dropping the database, which is
what Django's test runner does; django_pgbouncer.creation ends such sessions first.

Each test drives Django's creation API on a connection of its own (not the
session's aliases) against the session's real PostgreSQL and PgBouncer. The copy's
harm, end to end, is in tests/install/test_startproject.py (plain Django's
`test --parallel`)."""

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import ConnectionHandler

from devstack.stack import Stack
from django_pgbouncer import ConfigError, database_config
from django_pgbouncer.creation import creation_install
from tests.install.servers import (
    database_recreate,
    databases_drop,
    databases_named,
    stack_secrets,
    superuser,
)

pytestmark = pytest.mark.servers

PROBE = "test_creation_probe"  # a test database's name, as Django gives them


@pytest.fixture
def probe(stack: Stack) -> Iterator[str]:
    databases_drop(stack, PROBE)
    database_recreate(stack, PROBE)
    yield PROBE
    databases_drop(stack, PROBE)


@pytest.fixture
def pooled(
    stack: Stack, django_db_blocker: Any
) -> Iterator[Callable[..., BaseDatabaseWrapper]]:
    """A connection through PgBouncer to a database, as database_config() sets one
    up; with the app's creation when `fixed`, else Django's own. Outside the
    session's aliases, so pytest-django's transactions are not involved."""
    handlers: list[ConnectionHandler] = []

    def connect(name: str, *, fixed: bool) -> BaseDatabaseWrapper:
        url = stack.pooled_url.with_(name=name).url()
        handlers.append(ConnectionHandler({"default": database_config(url=url)}))
        connection = handlers[-1]["default"]
        if fixed:
            # Installed as at start-up, while the alias names the real database;
            # then pointed at `name`, as Django's test runner does.
            connection.settings_dict["NAME"] = stack.pooled_url.name
            creation_install(connection)
            connection.settings_dict["NAME"] = name
        return connection

    with django_db_blocker.unblock():
        yield connect
    for handler in handlers:
        handler.close_all()


def pgbouncer_visit(stack: Stack, name: str) -> None:
    """A client that comes and goes through PgBouncer, as the migrations of a test
    database do: PgBouncer keeps the server connection it opened."""
    with psycopg.connect(stack.pooled_url.with_(name=name).url()) as conn:
        conn.execute("SELECT 1")


def test_harm_pgbouncer_s_kept_session_stops_django_dropping(stack, probe, pooled):
    pgbouncer_visit(stack, probe)
    connection = pooled(probe, fixed=False)
    with pytest.raises(OperationalError, match="is being accessed by other users"):
        connection.creation.destroy_test_db(verbosity=0)


def test_the_app_s_creation_clones_and_drops_through_pgbouncer(stack, probe, pooled):
    pgbouncer_visit(stack, probe)
    connection = pooled(probe, fixed=True)
    connection.creation.clone_test_db(suffix="1", verbosity=0)
    assert databases_named(stack, probe) == [probe, f"{probe}_1"]
    pgbouncer_visit(stack, f"{probe}_1")  # a worker's tests, through PgBouncer
    pgbouncer_visit(stack, probe)
    connection.creation.destroy_test_db(suffix="1", verbosity=0)
    connection.creation.destroy_test_db(verbosity=0)
    assert databases_named(stack, probe) == []


def test_a_clone_an_interrupted_run_left_is_replaced(stack, probe, pooled):
    database_recreate(stack, f"{probe}_1")
    pgbouncer_visit(stack, f"{probe}_1")
    pgbouncer_visit(stack, probe)
    connection = pooled(probe, fixed=True)
    connection.creation.clone_test_db(suffix="1", verbosity=0)
    assert databases_named(stack, probe) == [probe, f"{probe}_1"]


def test_a_session_the_role_may_not_end_is_an_error_naming_the_fix(
    stack, probe, pooled
):
    url = stack.postgres.config.superuser_url(probe).url()
    with psycopg.connect(url) as held:  # a superuser's psql, say
        held.execute("SELECT 1")
        connection = pooled(probe, fixed=True)
        with pytest.raises(ConfigError) as raised:
            connection.creation.destroy_test_db(verbosity=0)
    message = str(raised.value)
    assert message.startswith(
        "DATABASES['default']: its role may not end the sessions of 'postgres'"
    )
    assert "pg_signal_backend" in message
    assert not any(secret in message for secret in stack_secrets(stack))


def test_sessions_on_a_database_that_is_not_a_test_database_are_left_alone(
    stack, pooled
):
    name = "creation_probe_real"
    database_recreate(stack, name)
    database_recreate(stack, f"{name}_1")
    try:
        pgbouncer_visit(stack, name)
        connection = pooled(name, fixed=True)
        # keepdb with the clone there: Django copies nothing, so only the app's
        # creation could have ended PgBouncer's session.
        connection.creation.clone_test_db(suffix="1", verbosity=0, keepdb=True)
        with superuser(stack) as conn:
            sessions = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]
            ).fetchone()
        assert sessions == (1,)  # PgBouncer's, still there
    finally:
        databases_drop(stack, name)


def test_a_test_name_equal_to_the_real_name_ends_no_session(stack, pooled):
    """TEST NAME set to the real database's name: the guard keeps its sessions."""
    real = stack.pooled_url.name
    pgbouncer_visit(stack, real)
    connection = pooled(real, fixed=True)
    connection.settings_dict["TEST"] = {"NAME": real}
    connection.creation._sessions_end([real], verbosity=0)
    with superuser(stack) as conn:
        sessions = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [real]
        ).fetchone()
    assert sessions is not None
    assert sessions != (0,)


def test_a_stale_test_database_is_left_alone_when_the_answer_is_no(
    stack, probe, pooled, monkeypatch
):
    """Django asks before dropping a test database a run left; until the answer is
    yes, the sessions on it (another run's, perhaps) stay."""
    pgbouncer_visit(stack, probe)
    connection = pooled(probe, fixed=True)
    connection.settings_dict["NAME"] = stack.pooled_url.name
    connection.settings_dict["TEST"] = {"NAME": probe}
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(SystemExit):
        connection.creation.create_test_db(verbosity=0, autoclobber=False)
    with superuser(stack) as conn:
        sessions = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [probe]
        ).fetchone()
    assert sessions == (1,)  # PgBouncer's, still there
