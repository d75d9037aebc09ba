"""Read replicas with read-your-writes: the pure core (LSNs, the choice of a
replica, the wait statement, the settings), then the router and its middleware
in gunicorn against a real replica made to lag with recovery_min_apply_delay."""

from __future__ import annotations

import copy
import http.cookiejar
import json
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.process import Account, port_pick, run_checked
from devstack.stack import PROJECT_DIR, Stack, web_child
from django_pgbouncer import ConfigError
from django_pgbouncer.conf import _routing_parse
from django_pgbouncer.routing import (
    ReplicaStatus,
    Route,
    lsn_format,
    lsn_parse,
    replica_choose,
    replica_database_configs,
)
from django_pgbouncer.routing.lsn import lsn_record_end, wait_statement
from tests.fixtures.replicas import replicated_stack
from tests.fixtures.stack import web_env

# --- The pure core. ---


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("0/0", 0),
        ("0/3000148", 0x3000148),
        ("16/B374D848", (0x16 << 32) + 0xB374D848),
        ("FFFFFFFF/FFFFFFFF", 2**64 - 1),
        (" 1/a ", (1 << 32) + 10),
    ],
    ids=["zero", "small", "two-halves", "largest", "spaces-lowercase"],
)
def test_lsn_parse_and_format(text, number):
    assert lsn_parse(text) == number
    assert lsn_parse(lsn_format(number)) == number


@pytest.mark.parametrize(
    "text", ["", "0", "0/", "/0", "1/2/3", "G/0", "123456789/0", "0x1/0"]
)
def test_lsn_parse_refuses_what_postgres_never_writes(text):
    assert lsn_parse(text) is None


SEGMENT, BLOCK = 16 * 2**20, 8192


@pytest.mark.parametrize(
    ("lsn", "end"),
    [
        (3 * SEGMENT + 40, 3 * SEGMENT),
        (3 * SEGMENT + BLOCK + 24, 3 * SEGMENT + BLOCK),
        (3 * SEGMENT + 24, 3 * SEGMENT + 24),
        (3 * SEGMENT + BLOCK + 40, 3 * SEGMENT + BLOCK + 40),
        (3 * SEGMENT + 4 * BLOCK + 0x1A8, 3 * SEGMENT + 4 * BLOCK + 0x1A8),
        (3 * SEGMENT, 3 * SEGMENT),
    ],
    ids=[
        "segment-start-long-header",
        "page-start-short-header",
        "24-into-a-segment-is-inside-its-long-header",
        "40-into-a-page-is-a-record-end",
        "mid-page",
        "boundary",
    ],
)
def test_lsn_record_end_takes_back_a_page_header(lsn, end):
    assert lsn_record_end(lsn, block_size=BLOCK, segment_size=SEGMENT) == end


UP = ReplicaStatus("r1", up=True, replay_lsn=100, lag_seconds=0.5)
UP2 = ReplicaStatus("r2", up=True, replay_lsn=200, lag_seconds=0.0)
DOWN = ReplicaStatus("r1", up=False)
LAGGING = ReplicaStatus("r1", up=True, replay_lsn=500, lag_seconds=30)


@pytest.mark.parametrize(
    ("statuses", "client_lsn", "chosen"),
    [
        ([UP], None, ("r1", Route.REPLICA)),
        ([UP], 100, ("r1", Route.REPLICA)),
        ([UP], 101, (None, Route.BEHIND)),
        ([UP, UP2], 150, ("r2", Route.REPLICA)),
        ([DOWN, UP2], None, ("r2", Route.REPLICA)),
        ([DOWN], None, (None, Route.DOWN)),
        ([], None, (None, Route.DOWN)),
        ([LAGGING], None, (None, Route.LAGGING)),
        ([LAGGING, UP], 300, (None, Route.BEHIND)),
        ([DOWN, LAGGING], None, (None, Route.LAGGING)),
    ],
    ids=[
        "no-write-yet",
        "replayed-exactly",
        "one-byte-behind",
        "second-has-it",
        "first-down",
        "all-down",
        "none",
        "lagging",
        "behind-beats-lagging",
        "lagging-beats-down",
    ],
)
def test_replica_choose(statuses, client_lsn, chosen):
    assert replica_choose(statuses, client_lsn=client_lsn, max_lag=5) == chosen


def test_wait_for_lsn_only_where_postgres_has_it():
    assert wait_statement(150004, 1, 0.1) is None
    assert wait_statement(180000, 1, 0.1) is None
    statement = wait_statement(190000, (0x16 << 32) + 0xB374D848, 0.25)
    assert statement is not None
    text = statement.as_string(None)
    assert text == "WAIT FOR LSN '16/B374D848' WITH (TIMEOUT '250ms', NO_THROW)"


DATABASES: dict[str, dict[str, Any]] = {"default": {}, "replica1": {}}


@pytest.mark.parametrize(
    ("raw", "variable", "words"),
    [
        ([], "PGBOUNCER_ROUTING", "not a dict"),
        ({"replica": ["replica1"]}, "PGBOUNCER_ROUTING", "unknown keys ['replica']"),
        ({"replicas": ["replica2"]}, "PGBOUNCER_ROUTING", "'replica2'"),
        ({"primary": "main"}, "PGBOUNCER_ROUTING", "'main'"),
        ({"max_lag_seconds": -1}, "PGBOUNCER_ROUTING['max_lag_seconds']", ">= 0"),
        ({"wait_seconds": "1"}, "PGBOUNCER_ROUTING['wait_seconds']", "number"),
        ({"down_seconds": True}, "PGBOUNCER_ROUTING['down_seconds']", "number"),
        ({"cookie_name": ""}, "PGBOUNCER_ROUTING['cookie_name']", "not a name"),
    ],
    ids=[
        "list",
        "misspelt",
        "unknown-replica",
        "unknown-primary",
        "negative",
        "text",
        "bool",
        "empty-cookie",
    ],
)
def test_routing_settings_errors_name_the_setting(raw, variable, words):
    with pytest.raises(ConfigError) as raised:
        _routing_parse(raw, DATABASES)
    assert raised.value.variable == variable
    assert words in str(raised.value)


def test_routing_settings_defaults():
    routing = _routing_parse({"replicas": ["replica1"]}, DATABASES)
    assert (routing.primary, routing.replicas) == ("default", ("replica1",))
    assert routing.wait_seconds == 0


def test_replica_entries_mirror_the_primary_under_test():
    """A test database is made on the primary only: a replica cannot make one."""
    entries = replica_database_configs(
        urls=["postgres://app:pw@h:6432/app_replica1", "postgres://app:pw@h:6432/r2"]
    )
    assert list(entries) == ["replica1", "replica2"]
    assert entries["replica2"]["NAME"] == "r2"
    assert all(e["TEST"] == {"MIRROR": "default"} for e in entries.values())
    assert entries["replica1"]["PGBOUNCER"]["pool_mode"] == "transaction"


def test_a_bad_replica_url_names_the_variable():
    with pytest.raises(ConfigError) as raised:
        replica_database_configs(urls=["mysql://h/app"])
    assert raised.value.variable == "REPLICA_DATABASE_URLS"


# --- Against a real replica, through gunicorn. ---

DELAY = 2.0  # seconds the replica holds each commit back in the lag tests


@pytest.fixture(scope="module")
def replicated() -> Iterator[Stack]:
    with replicated_stack("test-routing-", replicas=1) as stack:
        env = {**web_env(stack), "DJANGO_SETTINGS_MODULE": "config.settings"}
        run_checked(
            [sys.executable, str(PROJECT_DIR / "manage.py"), "migrate", "-v", "0"],
            what="migrate",
            env=env,
        )
        yield stack


@contextmanager
def site(stack: Stack, **variables: str) -> Iterator[str]:
    """gunicorn (1 worker, 8 threads) serving the routing views with the stack's
    replica, on a port of its own (two sites may run at once); yields its URL."""
    stack = copy.copy(stack)
    port = port_pick()
    # Its own log and metrics folder too: gunicorn empties that folder at start.
    root = stack.settings.root / f"site-{port}"
    stack.settings = replace(stack.settings, web_port=port, root=root)
    env = {
        **web_env(stack),
        "DJANGO_SETTINGS_MODULE": "tests.django_pgbouncer.routing_settings",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "8",
        **variables,
    }
    assert env["REPLICA_DATABASE_URLS"]
    child = web_child(stack, env, account=Account())
    child.start(timeout=60)
    try:
        yield stack.web_url
    finally:
        child.stop()


@pytest.fixture(scope="module")
def tolerant(replicated: Stack) -> Iterator[str]:
    """The site with a lag bound the DELAY stays within."""
    with site(replicated, REPLICA_MAX_LAG_SECONDS="600") as url:
        yield url


class Browser:
    """A client with its own cookies."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar)
        )

    def call(self, path: str, *, post: bool = False) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path,
            data=b"" if post else None,
            method="POST" if post else "GET",
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, None

    def read(self, path: str, **kwargs: Any) -> Any:
        status, body = self.call(path, **kwargs)
        assert status == 200
        return body


def new_key() -> str:
    return uuid.uuid4().hex[:16]


def replayed(stack: Stack) -> None:
    stack.replicas[0].caught_up_wait(timeout=10)


@contextmanager
def lag(stack: Stack, seconds: float) -> Iterator[None]:
    stack.replicas[0].apply_delay_set(seconds)
    try:
        yield
    finally:
        stack.replicas[0].apply_delay_set(0)
        replayed(stack)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics(base: str) -> Samples:
    with urllib.request.urlopen(base + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def routed(before: Samples, after: Samples, decision: str, alias: str) -> float:
    key = (
        "django_pgbouncer_routes_total",
        (("alias", alias), ("decision", decision)),
    )
    return float(after.get(key, 0) - before.get(key, 0))


@pytest.mark.servers
def test_a_client_reads_its_own_write_another_may_not(replicated, tolerant):
    """With the replica 2 s behind: the writer reads its new value at once (the
    primary: its cookie's LSN is past the replica's), another client reads the old
    one from the replica; once replayed, the writer's reads are the replica's."""
    key = new_key()
    writer, other = Browser(tolerant), Browser(tolerant)
    writer.read(f"/routing/put/{key}/old", post=True)
    replayed(replicated)
    before = metrics(tolerant)
    with lag(replicated, DELAY):
        written = writer.read(f"/routing/put/{key}/new", post=True)
        assert written == {"content": "new", "alias": "default", "replica": False}
        assert writer.read(f"/routing/get/{key}") == written
        assert other.read(f"/routing/get/{key}") == {
            "content": "old",
            "alias": "replica1",
            "replica": True,
        }
        deadline = time.monotonic() + DELAY + 10
        while writer.read(f"/routing/get/{key}")["alias"] != "replica1":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert writer.read(f"/routing/get/{key}")["content"] == "new"
    after = metrics(tolerant)
    assert routed(before, after, "primary_behind", "default") >= 1
    assert routed(before, after, "replica", "replica1") >= 2


@pytest.mark.servers
def test_reads_after_a_write_in_the_request_go_to_the_primary(replicated, tolerant):
    key = new_key()
    Browser(tolerant).read(f"/routing/put/{key}/v", post=True)
    replayed(replicated)
    with lag(replicated, DELAY):
        bumped = Browser(tolerant).read(f"/routing/bump/{key}")
    assert bumped["before"]["alias"] == "replica1"
    assert bumped["after"] == {
        "content": "bumped",
        "alias": "default",
        "replica": False,
    }


@pytest.mark.servers
def test_reads_inside_atomic_go_to_the_primary(tolerant):
    key = new_key()
    assert Browser(tolerant).read(f"/routing/get/{key}")["alias"] == "replica1"
    assert Browser(tolerant).read(f"/routing/atomic/{key}")["alias"] == "default"


@pytest.mark.servers
def test_reads_really_reach_the_replica(replicated, tolerant):
    """The replica's own counters move by the reads sent to it."""
    url = replicated.replicas[0].config.superuser_url("app").url()

    def commits() -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = 'app'"
            ).fetchone()
        assert row is not None
        return int(row[0])

    before = commits()
    reader = Browser(tolerant)
    for _ in range(20):
        assert reader.read(f"/routing/get/{new_key()}")["alias"] == "replica1"
    deadline = time.monotonic() + 10  # a backend reports its counters within 1 s
    while commits() < before + 20:
        assert time.monotonic() < deadline, "the replica's counters did not move"
        time.sleep(0.2)


@pytest.mark.servers
def test_lag_and_decisions_in_metrics(tolerant):
    Browser(tolerant).read(f"/routing/get/{new_key()}")
    found = metrics(tolerant)
    assert found[("django_pgbouncer_replica_up", (("alias", "replica1"),))] == 1
    assert ("django_pgbouncer_replica_lag_seconds", (("alias", "replica1"),)) in found
    assert ("django_pgbouncer_replica_lag_bytes", (("alias", "replica1"),)) in found
    replica = (
        "django_pgbouncer_routes_total",
        (("alias", "replica1"), ("decision", "replica")),
    )
    assert found[replica] >= 1


@pytest.mark.servers
def test_a_replica_past_the_lag_bound_is_skipped(replicated):
    """Bound 1 s, replica held 3 s behind a fresh commit: reads go to the primary,
    and see the new value."""
    key = new_key()
    with site(replicated, REPLICA_MAX_LAG_SECONDS="1") as base:
        Browser(base).read(f"/routing/put/{key}/old", post=True)
        replayed(replicated)
        with lag(replicated, 3.0):
            Browser(base).read(f"/routing/put/{key}/new", post=True)
            time.sleep(1.5)  # the last transaction replayed is now older than 1 s
            before = metrics(base)
            got = Browser(base).read(f"/routing/get/{key}")
            after = metrics(base)
    assert got == {"content": "new", "alias": "default", "replica": False}
    assert routed(before, after, "primary_lagging", "default") == 1


@pytest.mark.servers
def test_a_read_may_wait_for_the_replica_to_catch_up(replicated):
    """REPLICA_WAIT_MS: the writer's read waits for the replica (1 s behind) to
    replay its write, polling on PostgreSQL 15, and reads it there."""
    key = new_key()
    with site(
        replicated, REPLICA_MAX_LAG_SECONDS="600", REPLICA_WAIT_MS="5000"
    ) as base:
        writer = Browser(base)
        writer.read(f"/routing/put/{key}/old", post=True)
        replayed(replicated)
        with lag(replicated, 1.0):
            writer.read(f"/routing/put/{key}/new", post=True)
            got = writer.read(f"/routing/get/{key}")
    assert got == {"content": "new", "alias": "replica1", "replica": True}


@contextmanager
def standby_delay(stack: Stack, setting: str) -> Iterator[psycopg.Connection[Any]]:
    """The replica's max_standby_streaming_delay for the block; yields a superuser
    connection to it."""
    url = stack.replicas[0].config.superuser_url("app").url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET max_standby_streaming_delay = '{setting}'")
        conn.execute("SELECT pg_reload_conf()")
        try:
            yield conn
        finally:
            conn.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
            conn.execute("SELECT pg_reload_conf()")


@pytest.mark.servers
def test_a_read_the_replica_cancels_runs_again_on_the_primary(replicated, tolerant):
    """A hot standby cancels a query that holds what replaying the primary's WAL
    needs (here a lock, after 100 ms): a recovery conflict, an error on the
    replica. The request runs again on the primary and answers 200."""
    before = metrics(tolerant)
    with standby_delay(replicated, "100ms") as replica, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(
            Browser(tolerant).call, f"/routing/slow/{new_key()}?sleep=2"
        )
        deadline = time.monotonic() + 10
        while not replica.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%%routing_slow%%'"
            " AND state = 'active' AND pid <> pg_backend_pid()"
        ).fetchone():
            assert time.monotonic() < deadline, (
                "the slow read never reached the replica"
            )
            time.sleep(0.05)
        primary = replicated.postgres.config.superuser_url("app").url()
        with psycopg.connect(primary) as conn:
            conn.execute("LOCK TABLE core_post IN ACCESS EXCLUSIVE MODE")
        status, body = answer.result(timeout=30)
    assert (status, body["alias"]) == (200, "default")
    assert routed(before, metrics(tolerant), "replica_failed", "replica1") == 1


@pytest.mark.servers
def test_a_stopped_replica_costs_no_failed_request(replicated, tolerant):
    """Readers keep reading while the replica stops (fast shutdown: its sessions
    end under running reads): every request answers 200, from the primary once
    it is gone."""
    replica = replicated.replicas[0]
    stop = threading.Event()

    def reader(_: int) -> list[tuple[int, str]]:
        browser, seen = Browser(tolerant), []
        while not stop.is_set():
            status, body = browser.call(f"/routing/get/{new_key()}")
            seen.append((status, body["alias"] if body else ""))
        return seen

    before = metrics(tolerant)
    with ThreadPoolExecutor(6) as pool:
        runs = [pool.submit(reader, n) for n in range(6)]
        time.sleep(1.0)
        replica.stop()
        time.sleep(1.5)
        stop.set()
        seen = [answer for run in runs for answer in run.result()]
    try:
        assert [s for s, _ in seen if s != 200] == []
        aliases = {alias for _, alias in seen}
        assert aliases == {"replica1", "default"}
        # The harm was there: reads were running on the replica when it stopped.
        assert routed(before, metrics(tolerant), "replica_failed", "replica1") >= 1
    finally:
        replica.start()
