"""make run with DEVSTACK_PGBOUNCER_PROCESSES=2: make restart-pgbouncer restarts
the processes one at a time under a bounded load of GETs through gunicorn, and no
request fails; a process that crashes is restarted alone. What users got is read
off every request; what the servers did, off their pids and each process's own
console."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.control import stack_env_read
from devstack.ephemeral import scratch_dir
from devstack.procfs import pid_alive
from django_pgbouncer.observe import console_show
from tests.devstack.runs import Run, ports_pick, server_pids
from tests.devstack.test_restart import (
    assert_served_throughout,
    home_page_within,
    restart_under_load,
)
from tests.fixtures.acl import acls_kept, checkout_folders

pytestmark = pytest.mark.servers

PROCESSES = 2


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    root = scratch_dir("test-restart-procs-")
    with acls_kept(checkout_folders()):
        started = Run(root, ports_pick(), DEVSTACK_PGBOUNCER_PROCESSES=str(PROCESSES))
        try:
            started.wait_ready()
            yield started
        finally:
            started.stop()
            shutil.rmtree(root, ignore_errors=True)


def process_pids(root: Path) -> list[int]:
    """Each process's pid, by its own pgbouncer.ini, in order."""
    found = []
    for i in range(1, PROCESSES + 1):
        (pid,) = server_pids(root / "pgbouncer" / str(i) / "pgbouncer.ini")
        found.append(pid)
    return found


def console_urls(root: Path) -> list[str]:
    return stack_env_read(root)["PGBOUNCER_ADMIN_URLS"].split()


def app_transactions(url: str) -> int:
    stats = console_show(url, "STATS")
    return next((int(s.total_xact_count) for s in stats if s.database == "app"), 0)


def test_make_run_says_where_each_process_is(run):
    assert (
        f"PgBouncer: {PROCESSES} processes on port "
        f"{run.ports['DEVSTACK_PGBOUNCER_PORT']} (so_reuseport), each also at "
        "127.0.1.1, 127.0.1.2" in run.output
    )
    urls = console_urls(run.root)
    assert [u.split("@")[1].split(":")[0] for u in urls] == ["127.0.1.1", "127.0.1.2"]


def test_restart_pgbouncer_restarts_each_process_and_fails_no_request(run):
    before = process_pids(run.root)
    samples, said, returned = restart_under_load(run, "restart-pgbouncer")
    assert "PgBouncer restarted in" in said
    assert_served_throughout(samples, returned)
    after = process_pids(run.root)
    assert set(after).isdisjoint(before)
    assert not any(pid_alive(pid) for pid in before)
    # The load went through every process (each counts from its own start).
    assert all(app_transactions(url) > 0 for url in console_urls(run.root))
    assert "stopped unexpectedly" not in run.output


def test_a_crashed_process_is_restarted_alone(run):
    first, second = process_pids(run.root)
    os.kill(second, signal.SIGKILL)
    run.wait_for("PgBouncer 2 is back after")
    assert "PgBouncer 2 stopped unexpectedly (killed by SIGKILL)" in run.output
    new_first, new_second = process_pids(run.root)
    assert new_first == first
    assert new_second != second
    assert b"Demo post 7" in home_page_within(run, 15)
