"""Database faults answered on the web side: a lost backend costs a safe request
nothing, and anything else the pooler refuses becomes a 503 with `Retry-After`,
never a 500.

Add `BackendLossMiddleware` to `MIDDLEWARE` early: right after `SecurityMiddleware`
(and WhiteNoise's middleware, which answers static files without the database)::

    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django_pgbouncer.middleware.BackendLossMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        ...
    ]

Why there: a retry re-runs everything inside it, so the middlewares that read the
database (sessions, authentication, messages) belong inside, where a retry starts
them afresh; and its `process_exception` runs after every inner one's.

Per request, an execute wrapper (`RequestRecorder`, on every alias) notes whether
a statement that may write ran, and whether a failing one ran inside `atomic()`. A
connection fault on a transaction-pooled alias (`fault_classify`) in a GET or HEAD
request that had not written, outside `atomic()`, is answered by running the
request once more on a fresh connection, waiting for one at most
`RECONNECT_WAIT_SECONDS`. Otherwise (it wrote, failed inside `atomic()`, another
method, the pool saturated or full, the retry failed too) the answer is 503 with
`Retry-After` and a short page (django_pgbouncer/unavailable.html). /metrics counts
both (`django_pgbouncer_request_retries_total`,
`django_pgbouncer_unavailable_responses_total`).

Limits: a function that writes, called in a SELECT (`SELECT my_func()`), looks like
a read; a request under `ATOMIC_REQUESTS` runs inside `atomic()` and is never
retried; streaming responses fail after their headers are sent, beyond reach.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import psycopg
from django.db import DatabaseError, InterfaceError, connections
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.template import loader
from django.utils.cache import add_never_cache_headers
from psycopg.sql import Composable

from .conf import app_settings, pooled_aliases
from .observe.metrics import request_retry_count, unavailable_response_count

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = [
    "RECONNECT_WAIT_SECONDS",
    "RETRY_WITHIN_SECONDS",
    "BackendLossMiddleware",
    "Fault",
    "NoRetry",
    "RequestRecorder",
    "fault_classify",
    "request_exception_note",
    "request_record_install",
    "statement_may_write",
]

logger = logging.getLogger("django_pgbouncer.middleware")

# PgBouncer tries a failed server login again after server_login_retry (2 s as
# rendered here): a fresh client connection was accepted 2.3 s after a killed
# PostgreSQL came back. Five seconds covers that with room to spare.
RECONNECT_WAIT_SECONDS = 5.0
RECONNECT_INTERVAL_SECONDS = 0.25
# Older requests are not run again: age (10) + reconnect (5) + a retry waiting in
# PgBouncer's queue up to query_wait_timeout (10) stays under gunicorn's 30 s.
RETRY_WITHIN_SECONDS = 10.0


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
    METHOD = "method"  # not GET or HEAD
    LATE = "late"  # the request had run RETRY_WITHIN_SECONDS already
    RETRY_FAILED = "retry_failed"  # run again, and met a fault again


# --- Pure: which statements may write, which errors are faults. ---

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


# --- What each run of a request did. ---


@dataclass
class _Attempt:
    wrote: bool = False
    failed_in_atomic: bool = False
    # The last statement error, its alias, and whether it closed the connection.
    error: BaseException | None = None
    error_alias: str = ""
    error_closed: bool = False
    unhandled: BaseException | None = None  # raised outside the view (see below)
    fault: Fault | None = None
    fault_aliases: list[str] = field(default_factory=list)


_attempt: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "pgbouncer_request_attempt", default=None
)


class RequestRecorder:
    """An execute wrapper, on every alias: what the current request ran."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        attempt = _attempt.get()
        if attempt is None:  # outside a request the middleware watches
            return execute(sql, params, many, context)
        conn = context["connection"]
        if not attempt.wrote:
            if isinstance(sql, Composable):  # psycopg's sql.SQL(...), sql.Composed
                sql = sql.as_string(conn.connection)
            attempt.wrote = statement_may_write(str(sql))
        try:
            return execute(sql, params, many, context)
        except DatabaseError as error:
            attempt.error, attempt.error_alias = error, self.alias
            attempt.error_closed = conn.connection is None or conn.connection.closed
            attempt.failed_in_atomic = attempt.failed_in_atomic or bool(
                conn.in_atomic_block
            )
            raise


def request_record_install(
    sender: object, connection: BaseDatabaseWrapper, **kwargs: object
) -> None:
    """`connection_created` receiver: a RequestRecorder on every alias, once (a
    write on any alias forbids a retry)."""
    if not any(isinstance(w, RequestRecorder) for w in connection.execute_wrappers):
        # First: a `with execute_wrapper(w):` block pops the last one when it ends.
        connection.execute_wrappers.insert(0, RequestRecorder(connection.alias))


def request_exception_note(sender: object, **kwargs: object) -> None:
    """`got_request_exception` receiver: an error raised outside the view (in an
    inner middleware) never reaches `process_exception`; Django turns it into a
    500 after sending this signal, with the error still being handled."""
    attempt = _attempt.get()
    if attempt is not None:
        attempt.unhandled = sys.exc_info()[1]


# --- The middleware. ---


def _fault_find(
    error: BaseException, attempt: _Attempt
) -> tuple[Fault, list[str]] | None:
    """The fault and the pooled aliases it hit; None when it is not ours."""
    pooled = pooled_aliases(app_settings().databases)
    if error is attempt.error:  # a statement failed
        closed, aliases = attempt.error_closed, [attempt.error_alias]
    else:  # connecting (or committing) failed: the wrapper saw nothing
        closed = True
        aliases = [
            c.alias for c in connections.all(initialized_only=True) if c.errors_occurred
        ]
    fault = fault_classify(error, connection_closed=closed)
    hit = [alias for alias in aliases if alias in pooled]
    return (fault, hit) if fault is not None and hit else None


def _refusal(request: HttpRequest, attempt: _Attempt, age: float) -> NoRetry | None:
    assert attempt.fault is not None
    if not attempt.fault.retryable:
        return NoRetry.NOT_RETRYABLE
    if request.method not in ("GET", "HEAD"):
        return NoRetry.METHOD
    if attempt.wrote:
        return NoRetry.WROTE
    if attempt.failed_in_atomic:
        return NoRetry.IN_ATOMIC
    return NoRetry.LATE if age >= RETRY_WITHIN_SECONDS else None


def connection_renew(alias: str, *, deadline: float) -> Fault | None:
    """Close `alias`'s connection and open a new one, trying again (until
    `deadline`) while PgBouncer or PostgreSQL behind it is away; not while the
    pool is overloaded. None when connected."""
    conn = connections[alias]
    while True:
        conn.close()
        try:
            conn.ensure_connection()
            return None
        except DatabaseError as error:
            fault = fault_classify(error, connection_closed=True)
            waiting = fault is not None and fault.retryable
            if not waiting or time.monotonic() + RECONNECT_INTERVAL_SECONDS > deadline:
                conn.close()
                return fault or Fault.BACKEND_LOST
        time.sleep(RECONNECT_INTERVAL_SECONDS)


def unavailable_response(fault: Fault, reason: NoRetry) -> HttpResponse:
    """503, `Retry-After`, the short page; counted and logged (no error text: it
    names hosts and ports)."""
    unavailable_response_count(fault=fault.value, reason=reason.value)
    logger.warning("database fault %s, not retried (%s): answered 503", fault, reason)
    page = loader.render_to_string(  # no request: no context processor's query
        "django_pgbouncer/unavailable.html", {"retry_after": fault.retry_after}
    )
    response = HttpResponse(page, status=503)
    response["Retry-After"] = str(fault.retry_after)
    add_never_cache_headers(response)
    return response


class BackendLossMiddleware:
    """Retry a safe request once after a database fault, else answer 503."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.monotonic()
        attempt, response = self._run(request)
        if attempt.fault is None:
            return response
        response.close()
        refusal = _refusal(request, attempt, time.monotonic() - started)
        if refusal is not None:
            return unavailable_response(attempt.fault, refusal)
        return self._retry(request, attempt.fault, attempt.fault_aliases)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        attempt = _attempt.get()
        if attempt is None or not isinstance(exception, DatabaseError):
            return None
        found = _fault_find(exception, attempt)
        if found is None:
            return None  # not a fault on a pooled alias: Django's 500 as ever
        attempt.fault, attempt.fault_aliases = found
        # A stand-in for the inner middlewares' process_response (a 5xx: sessions
        # are not saved); __call__ answers in its place.
        return HttpResponse(status=503)

    def _run(self, request: HttpRequest) -> tuple[_Attempt, HttpResponseBase]:
        attempt = _Attempt()
        token = _attempt.set(attempt)
        try:
            response = self.get_response(request)
        finally:
            _attempt.reset(token)
        error = attempt.unhandled
        if attempt.fault is None and response.status_code >= 500 and error:
            found = _fault_find(error, attempt)
            if found is not None:
                attempt.fault, attempt.fault_aliases = found
        return attempt, response

    def _retry(
        self, request: HttpRequest, fault: Fault, aliases: Iterable[str]
    ) -> HttpResponseBase:
        deadline = time.monotonic() + RECONNECT_WAIT_SECONDS
        for alias in aliases:
            again = connection_renew(alias, deadline=deadline)
            if again is not None:
                request_retry_count(fault=fault.value, outcome="failed")
                return unavailable_response(again, NoRetry.RETRY_FAILED)
        logger.info("database fault %s: running %s again", fault, request.method)
        attempt, response = self._run(request)
        if attempt.fault is None:
            request_retry_count(fault=fault.value, outcome="ok")
            return response
        response.close()
        request_retry_count(fault=fault.value, outcome="failed")
        return unavailable_response(attempt.fault, NoRetry.RETRY_FAILED)
