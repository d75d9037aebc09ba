"""Faults under load, as users meet them (issue 9's table).

Each test starts a private site (PostgreSQL, PgBouncer, gunicorn with 2 workers of
8 threads), puts 8 keep-alive clients on it (6 reading the list and a detail page,
2 logged-in admins adding posts), acts the fault 3 s in, and asserts on the
statuses users got and on what the servers reported. The faults and their checks
are devstack.faults's, the same bench.faults measures; a check names every thing
that did not hold, so a failure says what users got and what the servers said,
and where the servers' logs were kept.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.errors import ServersMissing
from devstack.faults import FaultRun, Shape, scenario_named, scenario_run
from tests.fixtures.stack import missing_servers

pytestmark = pytest.mark.servers

SHAPE = Shape(readers=6, writers=2, seconds=9.0, fault_after=3.0)

Faulted = tuple[FaultRun, list[str]]


@pytest.fixture
def fault(tmp_path: Path) -> Callable[[str], Faulted]:
    """`fault(name)`: the fault under SHAPE's load, and what did not hold (each
    problem after a line of what users got, the instants, and the logs' folder:
    the servers' logs are kept in the test's tmp_path)."""

    def run(name: str) -> Faulted:
        scenario, logs = scenario_named(name), tmp_path / "logs"
        try:
            record = scenario_run(scenario, shape=SHAPE, logs_to=logs)
        except ServersMissing as error:
            missing_servers(str(error))
        problems = scenario.check(record)
        if not problems:
            return record, []
        events = ", ".join(f"{e} at {record.at(e)} s" for e in record.events)
        summary = f"{record.summary.as_dict()}; {events}; logs in {logs}"
        return record, [summary, *problems]

    return run


def test_planned_postgres_restart_fails_nothing(fault) -> None:
    """`manage.py pgbouncer_maintenance -- pg_ctl restart` (the console user that
    may PAUSE, from the command's environment only): no request fails, requests
    sent while it ran waited and succeeded, pg_postmaster_start_time() is new,
    and SHOW DATABASES says the pool is no longer paused."""
    run, problems = fault("planned-restart")
    assert problems == []
    assert run.summary.failed == 0


def test_pgbouncer_restart_fails_nothing(fault) -> None:
    """devstack's PgBouncer restart (online, -R: the new process takes over the
    old one's sockets): no request fails, reads or writes; requests were sent
    while it ran; the log shows the takeover, and the new process is another (its
    SHOW STATS counted from zero again)."""
    run, problems = fault("pgbouncer-restarted")
    assert problems == []
    assert run.summary.failed == 0


def test_every_backend_terminated_fails_no_get(fault) -> None:
    """pg_terminate_backend() of every site backend, twice, while GETs and writes
    wait in their queries: no GET fails; a failed write is a 503 with
    Retry-After; every terminated backend is gone and new ones serve the site."""
    run, problems = fault("backends-terminated")
    assert problems == []
    assert run.summary.failed_reads == 0


def test_postgres_killed_fails_only_writes_in_flight(fault) -> None:
    """SIGKILL to the postmaster while requests wait in their queries, started
    again 0.5 s later by devstack's restart: no GET fails (those in flight at the
    kill included); only writes in flight during the outage fail, each a 503
    with Retry-After; the site answers again within server_login_retry (SHOW
    CONFIG) + 1 s of PostgreSQL accepting; /readyz said postgres_unreachable
    meanwhile; pg_postmaster_start_time() is new."""
    run, problems = fault("postgres-killed")
    assert problems == []
    assert run.summary.failed_reads == 0


def test_overload_is_answered_503_with_retry_after(fault) -> None:
    """A pool of 1 (QUERY_WAIT_TIMEOUT=2) whose server waits on a lock for 5 s:
    users waiting past query_wait_timeout get 503 with Retry-After, none a 500 or
    a dropped connection; SHOW POOLS showed clients waiting on a full pool,
    PgBouncer logged query_wait_timeout, /readyz said pool_saturated meanwhile."""
    run, problems = fault("overload")
    assert problems == []
    assert run.summary.statuses.get("503", 0) >= 1
    assert "500" not in run.summary.statuses
