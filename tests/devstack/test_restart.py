"""make run keeps the site up while its servers restart: asked for through the
documented commands (make restart-postgres, make restart-pgbouncer) under a
bounded load of GETs, and after a crash (SIGKILL), with a message; a crash loop
stops the stack instead of spinning.

What users got is read off every request of the load (devstack.load); what the
servers did, off their own word: PostgreSQL's start time, PgBouncer's pid and
counters, make run's messages."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.ephemeral import scratch_dir
from devstack.load import Load, LoadPlan, Sample
from devstack.procfs import pid_alive
from devstack.stack import PROJECT_DIR
from django_pgbouncer.observe import console_show
from tests.devstack.runs import (
    Run,
    assert_all_stopped,
    home_page,
    pgbouncer_pids,
    ports_pick,
    postmaster_pid,
)
from tests.fixtures.acl import acls_kept, checkout_folders

pytestmark = pytest.mark.servers

# The load: a few keep-alive readers from RESTART_AT seconds before the restart
# to AFTER seconds after it; bounded by LOAD_SECONDS, each request under 15 s.
READERS = 4
RESTART_AT = 2.0
AFTER = 2.0
LOAD_SECONDS = 60.0


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    """One make run for the module's restarts, stopped and deleted after."""
    root = scratch_dir("test-restart-")
    with acls_kept(checkout_folders()):
        started = Run(root, ports_pick())
        try:
            started.wait_ready()
            yield started
        finally:
            started.stop()
            shutil.rmtree(root, ignore_errors=True)


def make(run: Run, target: str) -> subprocess.CompletedProcess[str]:
    """`make TARGET` against `run`, as an operator types it."""
    return subprocess.run(
        ["make", "-s", target],
        cwd=PROJECT_DIR,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def restart_under_load(run: Run, target: str) -> tuple[list[Sample], str, float]:
    """`make TARGET` while READERS clients GET the site: every request, what the
    command printed, and when it returned."""
    plan = LoadPlan(
        host="127.0.0.1",
        port=run.ports["WEB_PORT"],
        readers=READERS,
        seconds=LOAD_SECONDS,
    )
    with Load(plan) as load:
        time.sleep(RESTART_AT)
        done = make(run, target)
        returned = time.monotonic()
        time.sleep(AFTER)
        load.stop.set()
    assert done.returncode == 0, done.stdout + done.stderr
    return load.samples, done.stdout + done.stderr, returned


def failed_text(samples: list[Sample]) -> str:
    return "; ".join(
        f"{s.method} {s.path} -> {s.status} {s.detail[:80]}" for s in samples
    )


def assert_served_throughout(samples: list[Sample], returned: float) -> None:
    failed = [s for s in samples if s.failed]
    assert failed == [], (
        f"{len(failed)} of {len(samples)} failed: {failed_text(failed)}"
    )
    # The load ran on both sides of the restart, or it proved nothing.
    assert [s for s in samples if s.end < returned - 1]
    assert [s for s in samples if s.start > returned]


def superuser_url(run: Run) -> str:
    assert run.root is not None
    secrets = json.loads((run.root / "secrets.json").read_text())
    port = run.ports["DEVSTACK_POSTGRES_PORT"]
    return f"postgresql://postgres:{secrets['postgres_password']}@127.0.0.1:{port}/app"


def postgres_started(run: Run) -> str:
    with psycopg.connect(superuser_url(run), connect_timeout=5) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
    assert row is not None
    return str(row[0])


def app_transactions(run: Run) -> int:
    """The site's transactions, as the running PgBouncer counts them."""
    assert run.root is not None
    stack_env = dict(
        line.split("=", 1) for line in (run.root / "stack.env").read_text().split()
    )
    stats = console_show(stack_env["PGBOUNCER_ADMIN_URL"], "STATS")
    return next(int(s.total_xact_count) for s in stats if s.database == "app")


def test_restart_postgres_fails_no_request(run):
    """Inside pgbouncer_maintenance: PAUSE, PostgreSQL stopped and started, RESUME;
    requests wait in PgBouncer meanwhile instead of failing."""
    before, pid = postgres_started(run), postmaster_pid(run.root)
    samples, said, returned = restart_under_load(run, "restart-postgres")
    assert "PAUSE all databases" in said
    assert "PostgreSQL restarted in" in said
    assert "RESUME all databases sent" in said
    assert_served_throughout(samples, returned)
    assert postgres_started(run) != before
    assert postmaster_pid(run.root) != pid
    assert not pid_alive(pid)
    assert "PostgreSQL: restart asked for" in run.output
    assert "PostgreSQL stopped unexpectedly" not in run.output


def test_restart_pgbouncer_fails_no_request(run):
    """An online restart (-R): the new PgBouncer takes over the old one's
    sockets, clients and server connections included; no client sees it."""
    (before,) = pgbouncer_pids(run.root)
    samples, said, returned = restart_under_load(run, "restart-pgbouncer")
    assert "PgBouncer restarted in" in said
    assert_served_throughout(samples, returned)
    (after,) = pgbouncer_pids(run.root)
    assert after != before
    assert not pid_alive(before)
    # The new process's counters started at its start: the load went through it.
    assert app_transactions(run) > 0
    assert "PgBouncer stopped unexpectedly" not in run.output
    log = (run.root / "pgbouncer" / "pgbouncer.log").read_text()
    assert "old process killed, resuming work" in log


def home_page_within(run: Run, seconds: float) -> bytes:
    """The home page, once the site serves it again (within `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return home_page(run.ports)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def pgbouncer_pid(root: Path) -> int:
    (pid,) = pgbouncer_pids(root)
    return pid


@pytest.mark.parametrize(
    ("name", "pid_of"),
    [("PgBouncer", pgbouncer_pid), ("PostgreSQL", postmaster_pid)],
    ids=["pgbouncer", "postgres"],
)
def test_a_crashed_server_is_restarted_with_a_message(run, name, pid_of):
    pid = pid_of(run.root)
    os.kill(pid, signal.SIGKILL)
    run.wait_for(f"{name} is back after")
    assert (
        f"{name} stopped unexpectedly (killed by SIGKILL); restarting it (crash "
        f"restart 1 of at most 3 within 60 s). Its log: {run.root}/"
    ) in run.output
    assert pid_of(run.root) != pid
    # PgBouncer waits server_login_retry (2 s) after failed logins to a dead
    # PostgreSQL before it tries again.
    assert b"Demo post 7" in home_page_within(run, 15)
    assert run.proc.poll() is None


def test_a_crash_loop_stops_the_stack(scratch):
    """The fourth crash within 60 s is not restarted: the stack stops, naming
    the log to read."""
    root, ports = scratch("test-crash-loop-"), ports_pick()
    run = Run(root, ports)
    try:
        run.wait_ready()
        for crash in range(1, 5):
            os.kill(pgbouncer_pid(root), signal.SIGKILL)
            if crash < 4:
                run.wait_for("PgBouncer is back after", count=crash)
        assert run.wait_exit(60) == 1
    finally:
        run.stop()
    log = root / "pgbouncer" / "pgbouncer.log"
    assert (
        f"PgBouncer stopped unexpectedly (killed by SIGKILL), the 4th time within "
        f"60 s; not restarting it again. See its log: {log}. Stopping the rest."
    ) in run.output
    assert "Traceback" not in run.output
    assert_all_stopped(ports, root, within=10)


def test_restart_without_a_run_says_what_to_do(scratch):
    root = scratch("test-restart-none-")
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "restart", "pgbouncer"],
        cwd=PROJECT_DIR,
        env={**os.environ, "DEVSTACK_DIR": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"make run is not running with its data in {root}" in result.stderr
    assert "Traceback" not in result.stderr
