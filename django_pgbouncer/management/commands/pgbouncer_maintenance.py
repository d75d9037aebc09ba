"""Planned maintenance without failed queries: PAUSE PgBouncer, run the operator's
command (restart PostgreSQL, switch over, upgrade), then RESUME.

While paused, PgBouncer holds new transactions instead of failing them, and has
closed its server connections, so CMD may take PostgreSQL away. RESUME is owed
from the moment PAUSE is sent, and sent on every way out Python sees. Signals are
recorded, never raised (an exception raised inside the code that sends RESUME
would skip it); the waits look at them ten times a second. The console user, from
PGBOUNCER_MAINTENANCE_URL in this command's environment only, is in admin_users:
the web processes hold one in stats_users, which may read the console, not pause it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import psycopg
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    OutputWrapper,
)

from django_pgbouncer.databases import PostgresURL, postgres_url_parse
from django_pgbouncer.env import env_str
from django_pgbouncer.errors import ConfigError, ConsoleUnavailable, redact
from django_pgbouncer.observe import Console, console_connect

VARIABLE = "PGBOUNCER_MAINTENANCE_URL"
# Clients queue from the moment PAUSE is sent, so each waits for the PAUSE and CMD
# together, and PgBouncer fails it after query_wait_timeout (the renderer's default:
# 10 s). A web request's transactions last milliseconds: one still open after 5 s
# is a job or a stuck client, and waiting longer would spend the time CMD needs.
DEFAULT_TIMEOUT = 5.0
# sysexits.h EX_TEMPFAIL: nothing was done; try again once the transaction ends.
TIMEOUT_EXIT = 75
# After a signal: CMD's time to exit by itself (it got the same Ctrl-C), then its
# time to exit after the signal is passed on to it; then RESUME regardless.
OWN_EXIT_SECONDS = 0.5
SIGNAL_GRACE_SECONDS = 10.0
# A RESUME that cannot reach the console is tried again, a second apart.
RESUME_ATTEMPTS = 5
POLL_SECONDS = 0.1
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def maintenance_url_read(env: Mapping[str, str]) -> PostgresURL:
    """PGBOUNCER_MAINTENANCE_URL, validated; errors name the variable, not the URL."""
    raw = env_str(env, "PGBOUNCER_MAINTENANCE_URL")
    if not raw:
        raise ConfigError(
            VARIABLE,
            "is not set, so there is no console user that may PAUSE",
            f"set {VARIABLE}=postgres://USER:PASSWORD@HOST:PORT/pgbouncer for this "
            "command only, USER listed in PgBouncer's admin_users (never give it to "
            "the web processes)",
        )
    url = postgres_url_parse(raw, variable=VARIABLE)
    if url.name != "pgbouncer":
        raise ConfigError(
            VARIABLE,
            f"names the database {url.name!r}, not PgBouncer's console",
            "end the URL with /pgbouncer, PgBouncer's own port and an admin_users user",
        )
    return url


class Signals:
    """SIGINT, SIGTERM and SIGHUP recorded while the block runs, then the old
    handlers back. Only the main thread may set handlers; elsewhere none are set."""

    def __init__(self) -> None:
        self.received: list[signal.Signals] = []
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum))

    def pending(self) -> bool:
        return bool(self.received)

    def exit_code(self) -> int:
        return 128 + self.received[0].value


@dataclass
class Maintenance:
    """One pause: PAUSE, CMD, (RECONNECT,) RESUME; `resume_owed` from PAUSE on."""

    url: PostgresURL
    database: str | None
    out: OutputWrapper
    err: OutputWrapper
    signals: Signals
    resume_owed: bool = False
    paused_at: float = field(default=0.0)

    @property
    def target(self) -> str:
        return f"database {self.database}" if self.database else "all databases"

    def run(self, argv: Sequence[str], *, timeout: float, reconnect: bool) -> int:
        """CMD's exit status; a CommandError when CMD did not run or was stopped."""
        try:
            code = self._paused_run(argv, timeout=timeout, reconnect=reconnect)
        except BaseException:
            self.resume()
            raise
        if not self.resume():
            raise CommandError(f"RESUME {self.target} failed; see above")
        return code

    def _paused_run(
        self, argv: Sequence[str], *, timeout: float, reconnect: bool
    ) -> int:
        with console_connect(self.url.url(), variable=VARIABLE) as console:
            wait_limit = self._preflight(console, timeout)
            limit = f"{wait_limit:g} s" if wait_limit else "no limit"
            self.out.write(
                f"PAUSE {self.target}: waiting up to {timeout:g} s for transactions "
                f"in flight. New transactions wait from now on (query_wait_timeout: "
                f"{limit})."
            )
            self._pause(console, timeout)
            self.out.write(
                f"Paused in {self._elapsed():.1f} s. Running: {self._shown(argv)}"
            )
            code = self._cmd_run(argv)
            if self.signals.pending():
                raise CommandError(
                    f"stopped by {self.signals.received[0].name}; CMD exited with "
                    f"{code}",
                    returncode=self.signals.exit_code(),
                )
            self.out.write(f"CMD exited with {code} after {self._elapsed():.1f} s.")
            if reconnect:
                console.command("RECONNECT", self.database)
                self.out.write(f"RECONNECT {self.target} sent.")
            return code

    def _preflight(self, console: Console, timeout: float) -> float:
        """query_wait_timeout (0: none); refuses a timeout that reaches it, and a
        database PgBouncer does not serve or that someone else has paused."""
        values = {item.key: item.value for item in console.show("CONFIG")}
        wait_limit = float(values.get("query_wait_timeout") or 0)
        if wait_limit and timeout >= wait_limit:
            raise CommandError(
                f"--timeout {timeout:g} is not below PgBouncer's query_wait_timeout "
                f"({wait_limit:g} s): clients that queue during the PAUSE would fail "
                "before it ends. Fix: a shorter --timeout"
            )
        if self.database is not None:
            databases = console.show("DATABASES")
            found = {d.name: d for d in databases if d.name != "pgbouncer"}
            if self.database not in found:
                raise CommandError(
                    f"PgBouncer serves no database {self.database!r}. Fix: "
                    f"--database one of {', '.join(sorted(found)) or '(none)'}, or "
                    "leave it out to pause them all"
                )
            if found[self.database].paused:
                raise CommandError(
                    f"{self.target} is paused already: another maintenance is running, "
                    "or one was cut short. Nothing was done. Fix: wait for it, or "
                    "RESUME by hand (see --help)"
                )
        return wait_limit

    def _pause(self, console: Console, timeout: float) -> None:
        self.paused_at = time.monotonic()
        self.resume_owed = True
        try:
            paused = console.pause(
                self.database, timeout=timeout, cancelled=self.signals.pending
            )
        except psycopg.Error as error:
            if error.sqlstate is None:  # the connection broke: the state is unknown
                raise
            self.resume_owed = False  # PgBouncer answered no: nothing was paused
            raise CommandError(self._refusal(error)) from None
        if self.signals.pending():
            raise CommandError(
                f"stopped by {self.signals.received[0].name} while PAUSE waited; "
                "CMD did not run",
                returncode=self.signals.exit_code(),
            )
        if not paused:
            raise CommandError(
                f"PAUSE did not finish within {timeout:g} s: {self._busy_clients()}. "
                "CMD did not run. Fix: let those transactions end (or end them), then "
                "run again, or give a longer --timeout",
                returncode=TIMEOUT_EXIT,
            )

    def _refusal(self, error: psycopg.Error) -> str:
        reason = redact(str(error).strip().splitlines()[0], [self.url.password])
        if "admin access needed" in reason:
            return (
                f"{VARIABLE}: PgBouncer refused PAUSE ({reason}): the user "
                f"{self.url.user!r} is not in admin_users (stats_users may only "
                f"read). Fix: set {VARIABLE} to a user listed in admin_users"
            )
        return f"PgBouncer refused PAUSE {self.target} ({reason}). Nothing was paused"

    def _busy_clients(self) -> str:
        """Who still holds a server connection, from SHOW CLIENTS (best effort: the
        console that waited is closed, so this asks on a new one)."""
        try:
            with console_connect(self.url.url(), variable=VARIABLE) as console:
                clients = console.show("CLIENTS")
        except ConsoleUnavailable as error:
            return f"SHOW CLIENTS failed ({error})"
        busy = [
            c
            for c in clients
            if c.link
            and c.database != "pgbouncer"
            and self.database in (None, c.database)
        ]
        if not busy:
            return "no client holds a server connection any more"
        described = "; ".join(
            f"{c.user}@{c.database} from {c.addr}:{c.port}"
            + (f" ({c.application_name})" if c.application_name else "")
            + f", request since {c.request_time}"
            for c in busy
        )
        return f"{len(busy)} client(s) still in a transaction: {described}"

    def _cmd_run(self, argv: Sequence[str]) -> int:
        """CMD with our stdin, stdout and stderr; its exit status (127: not found,
        126: not runnable). A recorded signal is passed on to it."""
        self.out.flush()  # our lines before CMD's
        try:
            process = subprocess.Popen(list(argv))
        except OSError as error:
            self.err.write(f"CMD could not start: {error.strerror}: {argv[0]!r}")
            return 127 if isinstance(error, FileNotFoundError) else 126
        while True:
            try:
                return process.wait(POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            if self.signals.pending():
                return self._cmd_stop(process)

    def _cmd_stop(self, process: subprocess.Popen[bytes]) -> int:
        """Pass the signal on, unless CMD exits by itself first (Ctrl-C at a
        terminal reaches its whole process group, CMD too); wait a grace period."""
        first = self.signals.received[0]
        if not self._cmd_wait(process, OWN_EXIT_SECONDS):
            process.send_signal(first)
            if not self._cmd_wait(process, SIGNAL_GRACE_SECONDS):
                self.err.write(
                    f"CMD (pid {process.pid}) is still running after {first.name}; "
                    "resuming PgBouncer anyway"
                )
        return self.signals.exit_code()

    def _cmd_wait(self, process: subprocess.Popen[bytes], seconds: float) -> bool:
        """Whether CMD exited within `seconds`; a further signal ends the wait."""
        deadline = time.monotonic() + seconds
        count = len(self.signals.received)
        while time.monotonic() < deadline and len(self.signals.received) == count:
            try:
                process.wait(POLL_SECONDS)
                return True
            except subprocess.TimeoutExpired:
                pass
        return process.poll() is not None

    def resume(self) -> bool:
        """RESUME if owed; False (and what to do, on stderr) when it failed."""
        if not self.resume_owed:
            return True
        problem = ""
        for attempt in range(RESUME_ATTEMPTS):
            if attempt:
                time.sleep(1)
            try:
                with console_connect(self.url.url(), variable=VARIABLE) as console:
                    problem = self._resume_send(console)
            except ConsoleUnavailable as error:
                problem = str(error)
                continue
            break
        else:
            self.err.write(
                f"RESUME {self.target} failed: {problem}. PgBouncer may still be "
                "paused: its clients wait, then fail after query_wait_timeout. Send "
                f'it yourself: psql "${VARIABLE}" -c '
                f"'RESUME{' ' + self.database if self.database else ''}'"
            )
            return False
        self.resume_owed = False
        note = f" ({problem})" if problem else ""
        self.out.write(
            f"RESUME {self.target} sent{note}; paused {self._elapsed():.1f} s in all."
        )
        return True

    def _resume_send(self, console: Console) -> str:
        """RESUME; what PgBouncer said if it had nothing to resume."""
        try:
            console.command("RESUME", self.database)
        except psycopg.Error as error:
            if error.sqlstate is None:
                raise
            # "pooler is not paused": nothing is held, which is what RESUME is for.
            return redact(str(error).strip(), [self.url.password])
        return ""

    def _elapsed(self) -> float:
        return time.monotonic() - self.paused_at

    def _shown(self, argv: Sequence[str]) -> str:
        return redact(shlex.join(argv), [self.url.password])


class Command(BaseCommand):
    help = (
        "Planned maintenance without failed queries: PAUSE PgBouncer (waiting at "
        "most --timeout seconds for the transactions in flight), run CMD (restart "
        "PostgreSQL, switch over, upgrade), then RESUME; RESUME also when CMD fails, "
        "when PAUSE times out, and on Ctrl-C, SIGTERM or SIGHUP. Clients wait in "
        "PgBouncer meanwhile and fail after its query_wait_timeout, so CMD must "
        "finish well within it (restarting PostgreSQL takes seconds). Reads "
        f"{VARIABLE}=postgres://USER:PASSWORD@HOST:PORT/pgbouncer, USER in "
        "admin_users. Exit status: CMD's; 75 when PAUSE timed out; 128+N after "
        "signal N; 1 for other errors. Killed with SIGKILL, it leaves PgBouncer "
        'paused: then run psql "$PGBOUNCER_MAINTENANCE_URL" -c RESUME.'
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            metavar="SECONDS",
            help="seconds PAUSE may wait for transactions in flight (default: "
            f"{DEFAULT_TIMEOUT:g}; below PgBouncer's query_wait_timeout)",
        )
        parser.add_argument(
            "--reconnect",
            action="store_true",
            help="RECONNECT after CMD, before RESUME: for a changed host, after "
            "CMD has changed PgBouncer's configuration and reloaded it",
        )
        parser.add_argument(
            "--database",
            metavar="NAME",
            help="pause this database of PgBouncer's only (default: all of them)",
        )
        parser.add_argument(
            "cmd",
            nargs=argparse.REMAINDER,
            metavar="-- CMD ARGS",
            help="the command to run while paused",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        argv = list(options["cmd"])
        if argv[:1] == ["--"]:
            argv = argv[1:]
        if not argv:
            raise CommandError(
                "no CMD given. Fix: name it after --, e.g. pgbouncer_maintenance -- "
                "pg_ctl -D DATADIR restart -m fast"
            )
        if not options["timeout"] > 0:
            raise CommandError("--timeout must be a number of seconds above 0")
        try:
            url = maintenance_url_read(os.environ)
            with Signals() as signals:
                code = Maintenance(
                    url, options["database"], self.stdout, self.stderr, signals
                ).run(argv, timeout=options["timeout"], reconnect=options["reconnect"])
        except (ConfigError, ConsoleUnavailable) as error:
            raise CommandError(str(error)) from None
        if code:
            raise CommandError(f"CMD exited with {code}", returncode=code)
