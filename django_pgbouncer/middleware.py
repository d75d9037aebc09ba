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
connection fault on a transaction-pooled alias (faults.py) in a GET or HEAD
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
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.template import loader
from django.utils.cache import add_never_cache_headers
from psycopg.sql import Composable

from .conf import app_settings, pooled_aliases
from .faults import Fault, NoRetry, fault_classify, statement_may_write
from .observe.metrics import request_retry_count, unavailable_response_count

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = [
    "RECONNECT_WAIT_SECONDS",
    "RETRY_WITHIN_SECONDS",
    "BackendLossMiddleware",
    "RequestRecorder",
    "connection_renew",
    "request_exception_note",
    "request_record_install",
    "unavailable_response",
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


def _refusal(
    method: str | None, methods: frozenset[str], attempt: _Attempt, age: float
) -> NoRetry | None:
    assert attempt.fault is not None
    if not attempt.fault.retryable:
        return NoRetry.NOT_RETRYABLE
    if method not in methods:
        return NoRetry.METHOD
    if attempt.wrote:
        return NoRetry.WROTE
    if attempt.failed_in_atomic:
        return NoRetry.IN_ATOMIC
    return NoRetry.LATE if age >= RETRY_WITHIN_SECONDS else None


def connection_renew(alias: str, *, deadline: float) -> Fault | None:
    """Close `alias`'s connection and open a new one that reaches PostgreSQL,
    trying again (until `deadline`) while PgBouncer or PostgreSQL behind it is away;
    not while the pool is overloaded. None when connected."""
    conn = connections[alias]
    while True:
        conn.close()
        try:
            conn.ensure_connection()
            # PgBouncer lets a client log in while PostgreSQL is still away (it
            # holds the verifier), then fails its first query until a server login
            # works ("server_login_retry"): one round trip shows the way is open.
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
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
    """Retry a safe request once after a database fault, else answer 503.

    `retry_methods`: a subclass may add methods whose views do nothing outside the
    database before their first write (a POST that had not written is then run
    again too); HTTP promises that of GET and HEAD only."""

    retry_methods = frozenset({"GET", "HEAD"})
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
        age = time.monotonic() - started
        refusal = _refusal(request.method, self.retry_methods, attempt, age)
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
