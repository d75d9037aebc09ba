"""`manage.py pgbouncer_maintenance`: PAUSE, CMD, RESUME, against real servers.

A private stack (its own PostgreSQL and PgBouncer) per module: the tests restart
its PostgreSQL and pause its PgBouncer, which the session's stack must never see.
The command runs as an operator runs it, in a process of its own, and every test
holds what it printed against the stack's passwords.

The restart is `pg_ctl restart` run as the servers' account: afterwards PostgreSQL
is pg_ctl's child, not the Stack's, so the fixture stops it with pg_ctl.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from devstack.ephemeral import ephemeral_pgbouncer, ephemeral_stack
from devstack.errors import ServersMissing
from devstack.faults.site import pg_ctl
from devstack.stack import PROJECT_DIR, Stack
from django_pgbouncer import PostgresURL
from tests.fixtures.stack import missing_servers

pytestmark = pytest.mark.servers

# Each test's bound on the command (a PAUSE, a CMD of seconds, a RESUME).
RUN_SECONDS = 60
# CMD for the tests: says whether the database is paused while it runs (asked on
# the console as PGBOUNCER_MAINTENANCE_URL's user), and its pid; then sleeps
# argv[1] seconds and exits with argv[2].
PROBE = """
import os, sys, time, psycopg
with psycopg.connect(os.environ["PGBOUNCER_MAINTENANCE_URL"], autocommit=True) as c:
    cur = c.execute("SHOW DATABASES", prepare=False)
    names = [d.name for d in cur.description]
    paused = [dict(zip(names, r))["paused"] for r in cur if r[0] == "app"]
print(f"probe: pid={os.getpid()} paused={paused[0]}", flush=True)
try:
    time.sleep(float(sys.argv[1]))
except KeyboardInterrupt:
    sys.exit(130)
sys.exit(int(sys.argv[2]))
"""


def maintenance_url(stack: Stack) -> PostgresURL:
    """The console user that may PAUSE (admin_users); the site's is a stats user."""
    return stack.maintenance_console_url


@contextmanager
def postgres_restarts_stopped(stack: Stack) -> Iterator[None]:
    """After the block, stop a PostgreSQL that pg_ctl restarted (the Stack's own
    child exited then, so stack.stop() would leave the new one running)."""
    try:
        yield
    finally:
        child = stack.postgres.child
        datadir = stack.postgres.config.datadir
        if (
            child
            and child.exited() is not None
            and (datadir / "postmaster.pid").exists()
        ):
            subprocess.run(
                pg_ctl(stack, "stop"), capture_output=True, timeout=60, check=False
            )


@pytest.fixture(scope="module")
def private_stack() -> Iterator[Stack]:
    with ExitStack() as cleanup:
        try:
            stack = cleanup.enter_context(
                ephemeral_stack("test-maintenance-", seed_posts=0)
            )
        except ServersMissing as error:
            missing_servers(str(error))
        cleanup.enter_context(postgres_restarts_stopped(stack))
        yield stack


def secrets_of(stack: Stack) -> list[str]:
    return [value for key, value in stack.secrets.items() if "password" in key]


@dataclass
class Run:
    """The command in a process of its own; its output read as it comes."""

    process: subprocess.Popen[str]
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._readers = [
            threading.Thread(target=self._read, args=(pipe, lines), daemon=True)
            for pipe, lines in (
                (self.process.stdout, self.stdout),
                (self.process.stderr, self.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe: Any, lines: list[str]) -> None:
        with pipe:
            for line in pipe:
                lines.append(line)

    def wait_for(self, start: str, timeout: float = 20) -> str:
        """The first line printed that starts with `start`, waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.stdout if line.startswith(start)]
            if found:
                return found[0]
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"the command never printed {start!r}: {self.output()}")

    def finish(self, timeout: float = RUN_SECONDS) -> int:
        returncode = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return returncode

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


def maintenance_start(
    stack: Stack, *args: str, url: PostgresURL | None = None, session: bool = False
) -> Run:
    """The command started; `session`: in a process group of its own, as a shell
    starts a foreground job, so a signal can reach the group as Ctrl-C does."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PGBOUNCER_", "DJANGO_", "DATABASE_URL"))
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONUNBUFFERED": "1",
        "PGBOUNCER_MAINTENANCE_URL": (url or maintenance_url(stack)).url(),
        # What an operator's shell that sourced stack.env has: DJANGO_DEBUG is off
        # unless set, and then the settings want a key and hosts.
        "DJANGO_SECRET_KEY": stack.secrets["django_secret_key"],
        "DJANGO_ALLOWED_HOSTS": "localhost",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_DIR / "manage.py"),
            "pgbouncer_maintenance",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=PROJECT_DIR,
        start_new_session=session,
    )
    return Run(process)


def maintenance(stack: Stack, *args: str, url: PostgresURL | None = None) -> Run:
    """Run the command to its end; no password in anything it printed."""
    run = maintenance_start(stack, *args, url=url)
    run.finish()
    output_check(stack, run)
    return run


def output_check(stack: Stack, run: Run) -> None:
    output = run.output()
    for secret in secrets_of(stack):
        assert secret not in output
    assert "Traceback" not in output


def probe(seconds: float, code: int) -> list[str]:
    return [sys.executable, "-c", PROBE, str(seconds), str(code)]


def app_paused(stack: Stack) -> int:
    """SHOW DATABASES' `paused` for the site's database."""
    with psycopg.connect(maintenance_url(stack).url(), autocommit=True) as conn:
        cur = conn.execute("SHOW DATABASES", prepare=False)
        names = [d.name for d in cur.description or []]
        rows = [dict(zip(names, row, strict=True)) for row in cur]
    (paused,) = [row["paused"] for row in rows if row["name"] == "app"]
    return int(paused)


def query_through_pgbouncer(stack: Stack) -> None:
    """A query through PgBouncer; a paused pool holds it up to query_wait_timeout
    (20 s), then fails it."""
    with psycopg.connect(stack.pooled_url.url(), connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@contextmanager
def commands_issued(stack: Stack) -> Iterator[list[str]]:
    """The console commands PgBouncer logs as issued during the block, in order:
    what the server saw, not what the command says it sent."""
    log = stack.pgbouncer.log
    start = log.stat().st_size
    issued: list[str] = []
    yield issued
    with log.open() as handle:
        handle.seek(start)
        issued += [
            line.split(" LOG ")[1].split()[0]
            for line in handle
            if "command issued" in line
        ]


# --- Under load: a PostgreSQL restart with and without the command -------------------


@dataclass
class Outcome:
    started: float  # time.time(), comparable with the server's clock on one machine
    ended: float
    error: str = ""


@dataclass
class Load:
    """Threads running short transactions through PgBouncer, each on a kept
    connection, as a web worker does; every transaction's outcome recorded."""

    url: str
    threads: int = 4
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def client(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        deadline = time.monotonic() + RUN_SECONDS
        while not self.stop.is_set() and time.monotonic() < deadline:
            started = time.time()
            try:
                if conn is None or conn.closed:
                    # As Django connects: PgBouncer 1.18 cannot carry prepared
                    # statements between server connections.
                    conn = psycopg.connect(
                        self.url, application_name="load", prepare_threshold=None
                    )
                with conn.transaction():
                    conn.execute("SELECT count(*) FROM pg_class")
                    # In flight long enough that a restart meets some transaction.
                    conn.execute("SELECT pg_sleep(0.01)")
                self.outcomes.append(Outcome(started, time.time()))
            except psycopg.Error as error:
                self.outcomes.append(Outcome(started, time.time(), str(error)[:80]))
                if conn is not None:
                    conn.close()
                time.sleep(0.05)
            time.sleep(0.005)
        if conn is not None:
            conn.close()

    @contextmanager
    def running(self) -> Iterator[Load]:
        workers = [threading.Thread(target=self.client) for _ in range(self.threads)]
        for worker in workers:
            worker.start()
        try:
            time.sleep(1)  # every client connected and busy
            yield self
            time.sleep(1)  # and still served afterwards
        finally:
            self.stop.set()
            for worker in workers:
                worker.join(RUN_SECONDS)

    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error]


def postmaster_started(stack: Stack) -> float:
    url = stack.postgres.config.superuser_url().url()
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    assert row
    return float(row[0].timestamp())


def service_back(stack: Stack) -> None:
    """Wait (bounded) until PgBouncer serves again after a restart it did not see
    coming: it refuses clients for server_login_retry after a failed login."""
    deadline = time.monotonic() + 20
    while True:
        try:
            query_through_pgbouncer(stack)
            return
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_harm_a_restart_without_the_command_fails_queries(private_stack):
    before = postmaster_started(private_stack)
    with Load(private_stack.pooled_url.url()).running() as load:
        restart = subprocess.run(
            pg_ctl(private_stack, "restart"), capture_output=True, timeout=60
        )
    service_back(private_stack)
    assert restart.returncode == 0, restart.stderr
    assert postmaster_started(private_stack) > before
    assert load.failed(), "the restart under load failed no transaction"
    print(
        f"unplanned restart under load: {len(load.outcomes)} transactions, "
        f"{len(load.failed())} failed: {sorted({o.error for o in load.failed()})}"
    )


def test_a_restart_inside_the_command_fails_no_query(private_stack):
    before = postmaster_started(private_stack)
    with Load(private_stack.pooled_url.url()).running() as load:
        run = maintenance(private_stack, "--", *pg_ctl(private_stack, "restart"))
    assert run.process.returncode == 0, run.output()
    restarted = postmaster_started(private_stack)
    assert restarted > before
    assert [o.error for o in load.failed()] == []
    # Transactions that began before the new server existed and ended on it: they
    # waited in PgBouncer through the restart.
    spanning = [o for o in load.outcomes if o.started < restarted < o.ended]
    assert spanning, "no transaction overlapped the restart"
    assert [o for o in load.outcomes if o.started > restarted + 0.5]
    print(
        f"planned restart under load: {len(load.outcomes)} transactions, "
        f"{len(load.failed())} failed, {len(spanning)} waited through the restart"
    )


# --- RESUME on every way out ---------------------------------------------------------


def test_a_failing_cmd_is_resumed_after_and_its_status_passed_on(private_stack):
    with commands_issued(private_stack) as issued:
        run = maintenance(private_stack, "--database", "app", "--", *probe(0, 3))
    assert issued == ["PAUSE", "RESUME"]
    assert run.process.returncode == 3
    assert "paused=1" in run.wait_for("probe: ")  # CMD ran paused
    assert app_paused(private_stack) == 0
    query_through_pgbouncer(private_stack)


def test_a_cmd_that_cannot_start_is_resumed_after(private_stack):
    with commands_issued(private_stack) as issued:
        run = maintenance(private_stack, "--database", "app", "--", "/no/such/cmd")
    assert issued == ["PAUSE", "RESUME"]
    assert run.process.returncode == 127
    assert "CMD could not start" in run.output()
    assert app_paused(private_stack) == 0


def test_a_pause_that_times_out_is_resumed_and_names_the_busy_client(
    private_stack, tmp_path
):
    marker = tmp_path / "cmd-ran"
    waited: list[object] = []

    def queued_client() -> None:
        try:
            query_through_pgbouncer(private_stack)
            waited.append("answered")
        except psycopg.Error as error:
            waited.append(error)

    with psycopg.connect(
        private_stack.pooled_url.url(), application_name="long-report"
    ) as holder:
        holder.execute("SELECT 1")  # a transaction left open
        run = maintenance_start(
            private_stack,
            "--timeout",
            "2",
            "--database",
            "app",
            "--",
            "touch",
            str(marker),
        )
        run.wait_for("PAUSE database app")
        time.sleep(0.3)
        queued = threading.Thread(target=queued_client)
        queued.start()  # arrives while PAUSE waits: it queues, it does not fail
        assert run.finish() == 75
        output_check(private_stack, run)
        queued.join(20)
        holder.commit()  # the long transaction was left alone
    assert app_paused(private_stack) == 0
    assert not marker.exists(), "CMD ran although PAUSE timed out"
    assert "did not finish within 2 s" in run.output()
    assert "long-report" in run.output()
    assert waited == ["answered"]


@pytest.mark.parametrize(
    ("sig", "to"),
    [
        (signal.SIGINT, "group"),  # Ctrl-C at a terminal: CMD gets it too
        (signal.SIGINT, "command"),  # kill -INT PID
        (signal.SIGTERM, "command"),  # docker stop, systemd, kill
        (signal.SIGHUP, "command"),  # the terminal went away
    ],
    ids=["ctrl-c", "sigint", "sigterm", "sighup"],
)
def test_a_signal_while_cmd_runs_stops_cmd_and_resumes(private_stack, sig, to):
    with commands_issued(private_stack) as issued:
        run = maintenance_start(
            private_stack, "--database", "app", "--", *probe(60, 0), session=True
        )
        line = run.wait_for("probe: ")
        assert "paused=1" in line
        if to == "group":
            os.killpg(run.process.pid, sig)
        else:
            run.process.send_signal(sig)
        assert run.finish() == 128 + sig.value
    output_check(private_stack, run)
    assert issued == ["PAUSE", "RESUME"]
    assert app_paused(private_stack) == 0
    cmd_pid = int(line.split("pid=")[1].split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(cmd_pid, 0)  # CMD ended (the signal reached it), and was reaped
    assert f"stopped by {sig.name}" in run.output()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_while_pause_waits_resumes_without_running_cmd(
    private_stack, sig, tmp_path
):
    marker = tmp_path / "cmd-ran"
    with psycopg.connect(private_stack.pooled_url.url()) as holder:
        holder.execute("SELECT 1")
        run = maintenance_start(
            private_stack,
            "--timeout",
            "8",  # below query_wait_timeout; the signal comes long before
            "--database",
            "app",
            "--",
            "touch",
            str(marker),
        )
        run.wait_for("PAUSE database app")
        time.sleep(0.5)
        assert app_paused(private_stack) == 1  # the pause is pending, in effect
        run.process.send_signal(sig)
        assert run.finish() == 128 + sig.value
        output_check(private_stack, run)
        holder.commit()
    assert app_paused(private_stack) == 0
    assert not marker.exists()
    assert "CMD did not run" in run.output()


def test_reconnect_comes_between_cmd_and_resume(private_stack):
    with commands_issued(private_stack) as issued:
        run = maintenance(
            private_stack, "--reconnect", "--database", "app", "--", "true"
        )
    assert run.process.returncode == 0, run.output()
    assert issued == ["PAUSE", "RECONNECT", "RESUME"]


# --- Credentials ---------------------------------------------------------------------


@contextmanager
def split_pgbouncer(stack: Stack) -> Iterator[tuple[Any, PostgresURL, PostgresURL]]:
    """A PgBouncer of its own with the split the deployment uses: the site's
    console user in stats_users only, the maintenance user in admin_users. Yields
    it, and the two console URLs pointing at it."""
    stats = PostgresURL("pgbouncer_stats", "Stats-pw-1", "127.0.0.1", 1, "pgbouncer")
    admin = PostgresURL("pgbouncer_maint", "Maint-pw-2", "127.0.0.1", 1, "pgbouncer")
    variables = {
        "PGBOUNCER_ADMIN_URL": stats.url(),
        "PGBOUNCER_MAINTENANCE_URL": admin.url(),
        "STATS_USERS": stats.user,
        "ADMIN_USERS": admin.user,
    }
    with ephemeral_pgbouncer(
        stack, "test-maintenance-split-", variables=variables
    ) as bouncer:
        port = bouncer.config.port
        yield bouncer, stats.with_(port=port), admin.with_(port=port)


def test_a_resume_that_cannot_be_sent_says_what_to_do(private_stack):
    with split_pgbouncer(private_stack) as (bouncer, _, admin):
        pid = bouncer.child.process.pid  # CMD takes PgBouncer away: no RESUME
        run = maintenance(private_stack, "--", "kill", "-KILL", str(pid), url=admin)
    assert run.process.returncode == 1
    message = "".join(run.stderr)
    assert "RESUME all databases failed" in message
    assert "psql \"$PGBOUNCER_MAINTENANCE_URL\" -c 'RESUME'" in message
    assert admin.password not in run.output()


def test_a_stats_user_gets_a_clear_error_and_an_admin_user_pauses(
    private_stack, tmp_path
):
    marker = tmp_path / "cmd-ran"
    with split_pgbouncer(private_stack) as (_, stats, admin):
        refused = maintenance(private_stack, "--", "touch", str(marker), url=stats)
        allowed = maintenance(private_stack, "--", "true", url=admin)
    assert refused.process.returncode == 1
    assert not marker.exists()
    message = "".join(refused.stderr)
    assert "PGBOUNCER_MAINTENANCE_URL" in message
    assert "'pgbouncer_stats' is not in admin_users" in message
    assert "Traceback" not in message
    assert "RESUME" not in refused.output()  # nothing was paused, nothing owed
    for output in (refused.output(), allowed.output()):
        assert "Stats-pw-1" not in output
        assert "Maint-pw-2" not in output
    assert allowed.process.returncode == 0, allowed.output()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "PGBOUNCER_MAINTENANCE_URL: is not set"),
        ("postgres://ops:Hidden-pw-3@127.0.0.1:notaport/pgbouncer", "the port"),
        ("postgres://ops:Hidden-pw-3@127.0.0.1:6432/app", "not PgBouncer's console"),
    ],
    ids=["unset", "malformed", "not-the-console"],
)
def test_a_missing_or_malformed_url_is_named_with_its_fix(value, problem):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGBOUNCER_")}
    if value is not None:
        env["PGBOUNCER_MAINTENANCE_URL"] = value
    result = subprocess.run(
        [sys.executable, "manage.py", "pgbouncer_maintenance", "--", "true"],
        capture_output=True,
        text=True,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=PROJECT_DIR,
        timeout=RUN_SECONDS,
        check=False,
    )
    assert result.returncode == 1
    assert problem in result.stderr
    assert "PGBOUNCER_MAINTENANCE_URL" in result.stderr
    assert "Fix: " in result.stderr
    assert "Hidden-pw-3" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_the_sites_console_url_cannot_pause(private_stack, tmp_path):
    marker = tmp_path / "cmd-ran"
    site_url = private_stack.admin_console_url  # what gunicorn holds
    run = maintenance(private_stack, "--", "touch", str(marker), url=site_url)
    assert run.process.returncode == 1
    assert f"{site_url.user!r} is not in admin_users" in "".join(run.stderr)
    assert not marker.exists()
