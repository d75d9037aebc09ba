"""Database faults as the web side meets them: a pure core for
django_pgbouncer.middleware. Which errors are faults (`fault_classify`), which are
worth running a request again for (`Fault.retryable`), and which statements may
write (`statement_may_write`), so that running again could write twice.
"""

from __future__ import annotations

import re
from enum import StrEnum

import psycopg
from django.db import InterfaceError

__all__ = ["Fault", "NoRetry", "fault_classify", "statement_may_write"]


class Fault(StrEnum):
    """What the database side did to a request."""

    BACKEND_LOST = "backend_lost"  # the connection died under it
    POSTGRES_UNREACHABLE = "postgres_unreachable"  # PgBouncer cannot log in
    PGBOUNCER_UNREACHABLE = "pgbouncer_unreachable"  # PgBouncer refused the TCP
    QUERY_WAIT_TIMEOUT = "query_wait_timeout"  # waited in the pool too long
    MAX_CLIENT_CONN = "max_client_conn"  # PgBouncer has no client slot left

    @property
    def retryable(self) -> bool:
        """Gone or restarting, not overloaded: running again may succeed. Overload
        is not retried: the retry would wait in the same full queue."""
        return self not in (Fault.QUERY_WAIT_TIMEOUT, Fault.MAX_CLIENT_CONN)

    @property
    def retry_after(self) -> int:
        """Seconds for `Retry-After`: a restart is over in about
        server_login_retry + 1 s; an overloaded pool needs its queue to drain."""
        return 5 if self.retryable else 10


class NoRetry(StrEnum):
    """Why a faulted request was answered 503 instead of being run again."""

    NOT_RETRYABLE = "not_retryable"  # overload: see Fault.retryable
    WROTE = "wrote"  # a statement that may write had run
    IN_ATOMIC = "in_atomic"  # the failing statement ran inside atomic()
    METHOD = "method"  # not GET or HEAD (retry_methods)
    LATE = "late"  # the request had run too long to run again in time
    RETRY_FAILED = "retry_failed"  # run again, and met a fault again


_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
# First words of statements that read, or only steer a transaction or a cursor.
_QUERIES = {"select", "with", "show", "values", "table"}
_STEERING = {"savepoint", "release", "rollback", "begin", "start", "set", "reset"}
_CURSORS = {"declare", "fetch", "move", "close"}
_READS = frozenset(_QUERIES | _STEERING | _CURSORS)
_MODIFYING = re.compile(r"\b(?:insert|update|delete|merge)\b", re.IGNORECASE)


def statement_may_write(sql: str) -> bool:
    """Whether running `sql` twice could write twice. Errs towards yes: a
    multi-statement string, a CTE that names a modifying verb, anything not a read."""
    noise = _NOISE.match(sql)
    text = sql[noise.end() :] if noise else sql
    word = _FIRST_WORD.match(text)
    first = word.group(0).lower() if word else ""
    if first not in _READS:
        return True
    if ";" in text.rstrip().rstrip(";"):
        return True
    return first == "with" and _MODIFYING.search(text) is not None


# Markers PgBouncer (1.18 to 1.25) puts in the errors it answers itself.
_MARKERS = (
    ("query_wait_timeout", Fault.QUERY_WAIT_TIMEOUT),
    ("max_client_conn", Fault.MAX_CLIENT_CONN),
    ("server_login_retry", Fault.POSTGRES_UNREACHABLE),
    ("cannot connect to server", Fault.POSTGRES_UNREACHABLE),
    # PostgreSQL's own refusals while it starts, recovers or stops (57P03),
    # which PgBouncer hands to the clients waiting for a server login.
    ("the database system is", Fault.POSTGRES_UNREACHABLE),
    ("server conn crashed", Fault.BACKEND_LOST),
)
# admin_shutdown (pg_terminate_backend), crash_shutdown, and the
# connection_exception class (08P01 excluded: PgBouncer uses it for everything).
_LOST_STATES = frozenset(
    {"57P01", "57P02", "08000", "08001", "08003", "08004", "08006"}
)


def _psycopg_error(error: BaseException) -> psycopg.Error | None:
    if isinstance(error, psycopg.Error):
        return error
    cause = error.__cause__  # Django's wrapped error names psycopg's as its cause
    return cause if isinstance(cause, psycopg.Error) else None


def fault_classify(error: BaseException, *, connection_closed: bool) -> Fault | None:
    """The fault behind a database error, or None for an ordinary error.
    `connection_closed`: the connection was closed right after the error."""
    raw = _psycopg_error(error)
    if raw is None:
        # Django's own "connection already closed", on a connection lost before.
        lost = isinstance(error, InterfaceError) and "closed" in str(error)
        return Fault.BACKEND_LOST if lost else None
    text = str(raw)
    for marker, fault in _MARKERS:
        if marker in text:
            return fault
    if raw.sqlstate == "57P03":  # cannot_connect_now
        return Fault.POSTGRES_UNREACHABLE
    if raw.sqlstate in _LOST_STATES:
        return Fault.BACKEND_LOST
    if raw.sqlstate is None and text.startswith("connection failed"):
        # Before any answer (refused, unreachable); a FATAL means one came.
        return None if "FATAL:" in text else Fault.PGBOUNCER_UNREACHABLE
    if raw.sqlstate is None and (
        connection_closed or isinstance(raw, psycopg.InterfaceError)
    ):
        return Fault.BACKEND_LOST
    return None
