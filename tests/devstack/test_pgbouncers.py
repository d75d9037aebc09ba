"""Several PgBouncer processes on one port (devstack.pgbouncers): they share the
port and userlist.txt, each has its own socket and a console at its own address,
and a rolling restart replaces every one of them while the port keeps serving."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from devstack.ephemeral import scratch_dir
from devstack.errors import StackError
from devstack.load import Load, LoadPlan
from devstack.pgbouncer import PgBouncerSetup
from devstack.pgbouncers import PgBouncers
from devstack.process import Account, port_pick, run_checked
from devstack.stack import PROJECT_DIR, Stack, StackSettings, run_env, web_child
from django_pgbouncer.observe import console_show

pytestmark = pytest.mark.servers

PROCESSES = 2
SIGINT_LINE = "got SIGINT, shutting down"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    root = scratch_dir("test-pgbouncers-")
    try:
        stack = Stack(
            StackSettings(
                root=root,
                postgres_port=port_pick(),
                pgbouncer_port=port_pick(),
                web_port=port_pick(),
                seed_posts=0,
                pgbouncer_processes=PROCESSES,
            ),
            durable=False,
        )
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def config(stack: Stack, url: str) -> dict[str, str]:
    return {c.key: c.value for c in console_show(url, "CONFIG")}


def pids(stack: Stack) -> list[int | None]:
    return [c.pid if c else None for c in stack.pgbouncer.children]


def test_each_process_has_its_own_console_socket_and_log(stack):
    urls = [u.url() for u in stack.admin_console_urls]
    assert len(urls) == PROCESSES
    configs = [config(stack, url) for url in urls]
    sockets = {c["unix_socket_dir"] for c in configs}
    assert len(sockets) == PROCESSES
    assert {c["listen_port"] for c in configs} == {str(stack.settings.pgbouncer_port)}
    assert all(c["so_reuseport"] == "1" for c in configs)
    # One userlist.txt for all: one SCRAM verifier per role.
    assert {c["auth_file"] for c in configs} == {
        str(stack.pgbouncer.config.workdir / "userlist.txt")
    }
    assert len(set(pids(stack))) == PROCESSES
    assert all(log.exists() for log in stack.pgbouncer.logs)


def test_the_shared_port_reaches_every_process(stack):
    """Many connections through the shared port: each process's console sees some
    of them (SHOW CLIENTS), and the site's role logs in through each."""
    conns = [psycopg.connect(stack.pooled_url.url()) for _ in range(24)]
    try:
        seen = [
            [c for c in console_show(u.url(), "CLIENTS") if c.database == "app"]
            for u in stack.admin_console_urls
        ]
    finally:
        for conn in conns:
            conn.close()
    assert [len(s) > 0 for s in seen] == [True] * PROCESSES
    assert sum(len(s) for s in seen) == 24


def _queries(url: str, stop: threading.Event, errors: list[str], count: list[int]):
    while not stop.is_set():
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            count.append(1)
        except psycopg.Error as error:
            errors.append(str(error).strip())


def restart_under_queries(stack: Stack) -> list[str]:
    """A rolling restart while 3 clients connect and query in a loop; their
    errors. Every process's pid is new after it."""
    before = pids(stack)
    stop = threading.Event()
    errors: list[str] = []
    count: list[int] = []
    url = stack.pooled_url.url()
    workers: list[Any] = [
        threading.Thread(target=_queries, args=(url, stop, errors, count))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    try:
        stack.pgbouncer.restart()
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
    assert set(pids(stack)).isdisjoint(before)
    assert count
    return errors


def test_a_rolling_restart_on_1_18_takes_over_each_process(stack):
    """-R through each process's own socket: no client sees it."""
    assert restart_under_queries(stack) == []
    for log in stack.pgbouncer.logs:
        assert "old process killed, resuming work" in log.read_text()


def test_without_online_restart_each_process_gets_sigint(stack):
    """Where -R is gone (1.23+): SIGINT, then a new process. The port never
    refuses a connection; one the kernel hands to a process while it shuts down
    (PAUSE, then exit) is closed with it: a lost session, which the site runs
    again (tests/devstack/test_restart.py)."""
    for process in stack.pgbouncer.processes:
        process.version = (1, 23)
    try:
        errors = restart_under_queries(stack)
    finally:
        for process in stack.pgbouncer.processes:
            process.version = stack.pgbouncer.version
    refused = [e for e in errors if "closed the connection unexpectedly" not in e]
    assert refused == []
    for log in stack.pgbouncer.logs:
        assert "got SIGINT, shutting down" in log.read_text()


@pytest.mark.parametrize(
    ("count", "host", "problem"),
    [
        (0, "127.0.0.1", "DEVSTACK_PGBOUNCER_PROCESSES=0 is not a count"),
        (65, "127.0.0.1", "DEVSTACK_PGBOUNCER_PROCESSES=65 is not a count"),
        (2, "10.0.0.1", "needs PgBouncer on a loopback address"),
    ],
    ids=["zero", "too-many", "not-loopback"],
)
def test_a_bad_count_names_the_variable(tmp_path, count, host, problem):
    with pytest.raises(StackError, match=problem):
        PgBouncers(PgBouncerSetup(workdir=tmp_path, port=6432, host=host), count=count)


@pytest.fixture(scope="module")
def site(stack: Stack) -> Iterator[str]:
    """gunicorn as make run has it, through the processes; yields its URL."""
    env = {**run_env(stack, os.environ), "DJANGO_SETTINGS_MODULE": "config.settings"}
    manage = [sys.executable, str(PROJECT_DIR / "manage.py")]
    run_checked([*manage, "migrate", "--noinput", "-v0"], what="migrate", env=env)
    run_checked([*manage, "seed_posts", "--count", "5"], what="seed", env=env)
    run_checked([*manage, "collectstatic", "--noinput", "-v0"], what="static", env=env)
    web = web_child(stack, env, account=Account())
    web.start(timeout=60)
    try:
        yield stack.web_url
    finally:
        web.stop()


def test_without_online_restart_the_site_fails_no_request(stack, site):
    """The SIGINT restart (1.23+'s way) under GETs through gunicorn: a request
    whose connection a stopping process closes runs again (the site's
    BackendLossMiddleware), so users see no failure."""
    for process in stack.pgbouncer.processes:
        process.version = (1, 23)
    plan = LoadPlan(
        host="127.0.0.1", port=stack.settings.web_port, readers=4, seconds=60
    )
    before = pids(stack)
    sigints = [log.read_text().count(SIGINT_LINE) for log in stack.pgbouncer.logs]
    try:
        with Load(plan) as load:
            time.sleep(1.5)
            stack.pgbouncer.restart()
            returned = time.monotonic()
            time.sleep(1.5)
            load.stop.set()
    finally:
        for process in stack.pgbouncer.processes:
            process.version = stack.pgbouncer.version
    failed = [f"{s.status} {s.detail[:80]}" for s in load.samples if s.failed]
    assert failed == []
    assert [s for s in load.samples if s.end < returned - 1]
    assert [s for s in load.samples if s.start > returned]
    assert set(pids(stack)).isdisjoint(before)
    # Each process was stopped by SIGINT (no takeover), once.
    after = [log.read_text().count(SIGINT_LINE) for log in stack.pgbouncer.logs]
    assert after == [n + 1 for n in sigints]
