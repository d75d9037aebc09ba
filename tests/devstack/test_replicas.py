"""DEVSTACK_REPLICAS: streaming replicas of the stack's PostgreSQL, each behind a
PgBouncer database of its own; none unless asked for."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack.errors import StackError
from devstack.replicas import REPLICA_PORT_DEFAULT, replica_ports_from_env
from devstack.run import _stack_env_write
from devstack.stack import Stack, StackSettings, run_env
from django_pgbouncer import ConfigError
from tests.fixtures.replicas import replicated_stack


@pytest.fixture(scope="module")
def replicated() -> Iterator[Stack]:
    with replicated_stack("test-replicas-", replicas=1) as stack:
        yield stack


def scalar(conn: Any, query: str) -> Any:
    return conn.execute(query).fetchone()[0]


def replica_url(stack: Stack) -> str:
    return stack.site_env()["REPLICA_DATABASE_URLS"].split(",")[0]


def marker_put(stack: Stack) -> str:
    """A new row on the primary, through PgBouncer; its marker."""
    marker = uuid.uuid4().hex
    with psycopg.connect(stack.pooled_url.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS replicated (marker text)")
        conn.execute("INSERT INTO replicated VALUES (%s)", [marker])
    return marker


def marker_seen(url: str, marker: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        if not scalar(conn, "SELECT to_regclass('replicated')"):
            return False
        found = conn.execute("SELECT 1 FROM replicated WHERE marker = %s", [marker])
        return found.fetchone() is not None


def seen_within(url: str, marker: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not marker_seen(url, marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize(
    ("env", "ports"),
    [
        ({}, ()),
        ({"DEVSTACK_REPLICAS": "0"}, ()),
        ({"DEVSTACK_REPLICAS": "2"}, (REPLICA_PORT_DEFAULT, REPLICA_PORT_DEFAULT + 1)),
        ({"DEVSTACK_REPLICAS": "1", "DEVSTACK_REPLICA_PORT": "60000"}, (60000,)),
    ],
    ids=["unset", "zero", "two", "own-port"],
)
def test_replica_ports_from_env(env, ports):
    assert replica_ports_from_env(env) == ports
    assert StackSettings.from_env(env).replica_ports == ports


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEVSTACK_REPLICAS": "two"}, "DEVSTACK_REPLICAS"),
        ({"DEVSTACK_REPLICAS": "-1"}, "DEVSTACK_REPLICAS"),
        (
            {"DEVSTACK_REPLICAS": "1", "DEVSTACK_REPLICA_PORT": "0"},
            "DEVSTACK_REPLICA_PORT",
        ),
    ],
    ids=["word", "negative", "port-zero"],
)
def test_a_bad_replica_variable_is_named(env, variable):
    with pytest.raises(ConfigError) as raised:
        replica_ports_from_env(env)
    assert raised.value.variable == variable


def test_replica_ports_past_the_last_port_say_which_to_lower():
    with pytest.raises(StackError, match=r"DEVSTACK_REPLICA_PORT=65535 .* 65534"):
        replica_ports_from_env(
            {"DEVSTACK_REPLICAS": "2", "DEVSTACK_REPLICA_PORT": "65535"}
        )


def test_no_replicas_by_default_changes_nothing(tmp_path: Path):
    """Without DEVSTACK_REPLICAS, PgBouncer and the site get no replica variable."""
    tmp_path.chmod(0o755)
    stack = Stack(StackSettings.from_env({"DEVSTACK_DIR": str(tmp_path)}))
    assert stack.replicas == []
    assert "POSTGRES_REPLICA_HOSTS" not in stack.pgbouncer.config.variables
    assert "REPLICA_DATABASE_URLS" not in stack.site_env()


@pytest.mark.servers
def test_a_replica_streams_the_primarys_writes(replicated: Stack):
    """Real replication: a row written on the primary through PgBouncer is read
    back through the replica's PgBouncer database, from a server in recovery."""
    marker = marker_put(replicated)
    assert seen_within(replica_url(replicated), marker, 10)
    with psycopg.connect(replica_url(replicated)) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        port = scalar(conn, "SELECT inet_server_port()")
    assert port == replicated.settings.replica_ports[0]
    superuser = replicated.postgres.config.superuser_url().url()
    with psycopg.connect(superuser) as conn:
        rows = conn.execute(
            "SELECT application_name, state FROM pg_stat_replication"
        ).fetchall()
    assert rows == [("replica1", "streaming")]


@pytest.mark.servers
def test_apply_delay_makes_the_lag_deterministic(replicated: Stack):
    """recovery_min_apply_delay holds a commit back on the replica: not there at
    once, there after the delay."""
    replica = replicated.replicas[0]
    replica.apply_delay_set(1.5)
    try:
        marker = marker_put(replicated)
        assert not marker_seen(replica_url(replicated), marker)
        assert seen_within(replica_url(replicated), marker, 10)
    finally:
        replica.apply_delay_set(0)


@pytest.mark.servers
def test_a_replica_restarts_from_its_own_copy(replicated: Stack):
    """A second start finds its data (no new base backup) and catches up on what
    the primary wrote while it was down."""
    replica = replicated.replicas[0]
    replica.stop()
    marker = marker_put(replicated)
    replica.start()
    assert marker_seen(replica_url(replicated), marker)


@pytest.mark.servers
def test_stack_env_names_the_replicas(replicated: Stack):
    """make run's stack.env has their URLs (through PgBouncer), for psql and tools."""
    path = _stack_env_write(replicated, run_env(replicated, {}))
    lines = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert lines["REPLICA_DATABASE_URLS"] == replica_url(replicated)
    assert replica_url(replicated).endswith(
        f":{replicated.settings.pgbouncer_port}/app_replica1"
    )
