"""A small client for PgBouncer's admin console: the one way the project reaches it.

The console is the virtual database `pgbouncer`, reached as a user listed in
`admin_users` or `stats_users`; it speaks the simple query protocol only and knows
no transactions. Each `SHOW` comes back as typed rows; columns a PgBouncer version
adds are kept in `extra`. `command()` sends the few control commands an operator
tool needs, and `pause()` a PAUSE bounded in time (they want a user in
`admin_users`; the site itself only reads).
"""

from __future__ import annotations

import re
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import psycopg
from psycopg import pq

from ..databases import postgres_url_parse
from ..errors import ConsoleUnavailable, redact

__all__ = [
    "Client",
    "ConfigItem",
    "Console",
    "Database",
    "Pool",
    "Server",
    "Stat",
    "Version",
    "console_command",
    "console_connect",
    "console_show",
]

TIMEOUT_SECONDS = 3
# How often a waiting pause() asks whether it was cancelled.
POLL_SECONDS = 0.1
# Control commands that act on pools (SHUTDOWN, SET and RELOAD are left out: a
# program that needs them is an operator's, not this client's).
COMMANDS = frozenset(
    {
        "PAUSE",
        "RESUME",
        "RECONNECT",
        "KILL",
        "SUSPEND",
        "DISABLE",
        "ENABLE",
        "WAIT_CLOSE",
    }
)
# The names pgbouncer.ini's renderer allows ([A-Za-z0-9_.-]).
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class _Row:
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Pool(_Row):
    database: str = ""
    user: str = ""
    cl_active: int = 0
    cl_waiting: int = 0
    sv_active: int = 0
    sv_idle: int = 0
    sv_used: int = 0
    sv_tested: int = 0
    sv_login: int = 0
    maxwait: int = 0
    maxwait_us: int = 0
    pool_mode: str = ""

    @property
    def maxwait_seconds(self) -> float:
        return self.maxwait + self.maxwait_us / 1e6

    @property
    def servers(self) -> int:
        return (
            self.sv_active
            + self.sv_idle
            + self.sv_used
            + self.sv_tested
            + (self.sv_login)
        )


@dataclass(frozen=True)
class Stat(_Row):
    database: str = ""
    total_xact_count: int = 0
    total_query_count: int = 0
    total_received: int = 0
    total_sent: int = 0
    total_xact_time: int = 0  # microseconds
    total_query_time: int = 0
    total_wait_time: int = 0
    avg_xact_count: int = 0  # per second, over the last stats_period
    avg_query_count: int = 0
    avg_recv: int = 0
    avg_sent: int = 0
    avg_xact_time: int = 0  # microseconds
    avg_query_time: int = 0
    avg_wait_time: int = 0


@dataclass(frozen=True)
class Server(_Row):
    type: str = ""
    user: str = ""
    database: str = ""
    state: str = ""
    addr: str = ""
    port: int = 0
    connect_time: str = ""
    request_time: str = ""
    link: str = ""  # the peer's address in PgBouncer: set while one is assigned
    application_name: str = ""


@dataclass(frozen=True)
class Client(Server):
    """SHOW CLIENTS: a server row's columns, and how long the client has waited."""

    wait: int = 0
    wait_us: int = 0


@dataclass(frozen=True)
class Database(_Row):
    name: str = ""
    host: str | None = None
    port: int = 0
    database: str = ""
    pool_size: int = 0
    min_pool_size: int = 0
    reserve_pool: int = 0
    pool_mode: str | None = None
    max_connections: int = 0
    current_connections: int = 0
    paused: int = 0
    disabled: int = 0


@dataclass(frozen=True)
class ConfigItem(_Row):
    key: str = ""
    value: str = ""
    default: str = ""
    changeable: str = ""


@dataclass(frozen=True)
class Version(_Row):
    version: str = ""


_ROWS: dict[str, type[_Row]] = {
    "POOLS": Pool,
    "STATS": Stat,
    "SERVERS": Server,
    "CLIENTS": Client,
    "DATABASES": Database,
    "CONFIG": ConfigItem,
    "VERSION": Version,
}
R = TypeVar("R", bound=_Row)


def _row(cls: type[R], values: dict[str, Any]) -> R:
    known = {f.name: f for f in fields(cls) if f.name != "extra"}

    def typed(name: str, value: Any) -> Any:
        # PgBouncer sends its counters as numeric: Decimal in Python.
        if isinstance(known[name].default, int) and value is not None:
            return int(value)
        return value

    return cls(
        **{k: typed(k, v) for k, v in values.items() if k in known},
        extra={k: v for k, v in values.items() if k not in known},
    )


class Console:
    """An open admin console connection; `show()` as many times as needed."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def show(self, what: str) -> list[Any]:
        cls = _ROWS[what.upper()]
        cur = self._conn.execute(f"SHOW {what.upper()}", prepare=False)
        names = [col.name for col in cur.description or []]
        return [_row(cls, dict(zip(names, r, strict=True))) for r in cur]

    def command(self, verb: str, database: str | None = None) -> None:
        """`RECONNECT`, `PAUSE`, `RESUME`, `KILL` ... for one database or all."""
        self._conn.execute(_command_text(verb, database), prepare=False)

    def pause(
        self,
        database: str | None = None,
        *,
        timeout: float,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> bool:
        """`PAUSE [database]`, waiting at most `timeout` seconds (or until
        `cancelled()` is true) for the transactions in flight to end.

        True: PgBouncer answered, the pool is paused. False: it had not; this
        console is then closed, and the pause stays in effect (new transactions
        wait) until a RESUME from another connection. PgBouncer 1.18 ignores cancel
        requests on its console and answers a pending PAUSE to nobody else, so
        closing is the only way to stop waiting. A refused PAUSE (a user outside
        admin_users) raises psycopg's error for PgBouncer's answer.
        """
        pgconn = self._conn.pgconn
        pgconn.send_query(_command_text("PAUSE", database).encode())
        deadline = time.monotonic() + timeout
        poller = select.poll()  # not select(): any descriptor number works
        poller.register(pgconn.socket, select.POLLIN)
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
            left = deadline - time.monotonic()
            if left <= 0 or cancelled():
                self._conn.close()
                return False
            poller.poll(min(left, POLL_SECONDS) * 1000)
        results = []
        while (result := pgconn.get_result()) is not None:
            results.append(result)
        for result in results:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                raise psycopg.errors.error_from_result(
                    result, encoding=self._conn.info.encoding
                )
        return True


def _command_text(verb: str, database: str | None) -> str:
    verb = verb.upper()
    if verb not in COMMANDS:
        raise ValueError(f"{verb!r} is not one of {', '.join(sorted(COMMANDS))}")
    if database is not None and not _DATABASE_NAME.fullmatch(database):
        raise ValueError(f"{database!r} is not a database name PgBouncer serves")
    # Quoted: PgBouncer's console reads a bare name as [a-z0-9_]+ and refuses
    # `PAUSE my.db`; it takes any name in double quotes, case kept.
    return f'{verb} "{database}"' if database else verb


@contextmanager
def console_connect(
    admin_url: str, *, variable: str = "PGBOUNCER_ADMIN_URL"
) -> Iterator[Console]:
    """Open the console; any failure inside becomes ConsoleUnavailable, whose
    message holds no password. `variable`: where the URL came from, named in a
    ConfigError when it is malformed."""
    url = postgres_url_parse(admin_url, variable=variable)
    try:
        with psycopg.connect(
            admin_url, autocommit=True, connect_timeout=TIMEOUT_SECONDS
        ) as conn:
            yield Console(conn)
    except psycopg.Error as error:
        lines = str(error).strip().splitlines()
        reason = redact(lines[0] if lines else type(error).__name__, [url.password])
        raise ConsoleUnavailable(
            f"PgBouncer's admin console at {url.redacted()} did not answer: {reason}"
        ) from None


def console_command(
    admin_url: str,
    verb: str,
    database: str | None = None,
    *,
    variable: str = "PGBOUNCER_ADMIN_URL",
) -> None:
    """One control command (see `Console.command`)."""
    with console_connect(admin_url, variable=variable) as console:
        console.command(verb, database)


def console_show(admin_url: str, what: str) -> list[Any]:
    """`SHOW <what>` (POOLS, STATS, SERVERS, CLIENTS, DATABASES, CONFIG, VERSION)."""
    with console_connect(admin_url) as console:
        return console.show(what)
