"""ReadYourWritesMiddleware: carries the client's last commit position (LSN)
from one request to the next in a signed cookie, and runs a read-only request
again on the primary when the replica it read from failed under it.

Place it right after BackendLossMiddleware, before the middlewares that read the
database (sessions, authentication), so that their reads are routed too and their
writes (a session saved) set the cookie::

    MIDDLEWARE = [
        ...
        "django_pgbouncer.middleware.BackendLossMiddleware",
        "django_pgbouncer.routing.ReadYourWritesMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        ...
    ]

The position is the primary's flush position after the request, at or past the
end of its last commit record; where commits do not wait for the flush
(`synchronous_commit = off`), the insert position, which the flush position
could still be short of (lsn.COMMIT_POSITION_SQL).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core import signing
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from ..conf import RoutingSettings, routing_settings
from ..observe import route_count
from .lsn import COMMIT_POSITION_SQL, Route, lsn_format, lsn_parse, lsn_record_end
from .request import (
    RequestRoute,
    request_route,
    request_route_reset,
    request_route_set,
    wrappers_ensure,
)
from .status import replica_down_mark

__all__ = ["COOKIE_SALT", "ReadYourWritesMiddleware"]

logger = logging.getLogger("django_pgbouncer.routing")
COOKIE_SALT = "django_pgbouncer.routing.lsn"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _client_lsn(request: HttpRequest, routing: RoutingSettings) -> int | None:
    try:
        text = request.get_signed_cookie(
            routing.cookie_name,
            default=None,
            salt=COOKIE_SALT,
            max_age=routing.cookie_seconds,
        )
    except signing.BadSignature:
        return None
    return lsn_parse(text) if text else None


def _primary_lsn(routing: RoutingSettings) -> int | None:
    """At or past the end of the request's last commit (lsn.COMMIT_POSITION_SQL)."""
    try:
        with connections[routing.primary].cursor() as cursor:
            cursor.execute(COMMIT_POSITION_SQL)
            row = cursor.fetchone()
    except DatabaseError as error:
        # The write went through; the next reads may see an older copy.
        logger.warning("no commit position for the LSN cookie (%s)", type(error))
        return None
    lsn = lsn_parse(row[0]) if row and row[0] else None
    if lsn is None:
        return None
    return lsn_record_end(lsn, block_size=row[1], segment_size=row[2])


def _replica_failed(state: RequestRoute) -> str | None:
    """The replica that failed this run: a fault or a recovery conflict in a
    statement, or a connect that failed (it runs no statement, and leaves no
    connection). Any other error (a mistake in the SQL) is the view's."""
    if state.replica_fault is not None:
        return state.replica_fault
    chosen = state.replica
    if chosen is None:
        return None
    conn = connections[chosen]
    return chosen if conn.errors_occurred and conn.connection is None else None


class ReadYourWritesMiddleware:
    """The LSN cookie in, the routing state per request, the cookie out."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        routing = routing_settings()
        if not routing.replicas:
            return self.get_response(request)
        wrappers_ensure(routing)
        client_lsn = _client_lsn(request, routing)
        state, response = self._run(request, client_lsn)
        failed = _replica_failed(state)
        if failed is not None and state.safe and not state.wrote:
            logger.warning("replica %s failed: the request runs again", failed)
            route_count(decision=Route.REPLICA_FAILED.value, alias=failed)
            response.close()
            if not state.replica_conflict:  # down a while: later requests skip it
                replica_down_mark(failed, routing.down_seconds)
            # The second run reads from the primary, whatever the replicas say.
            state, response = self._run(request, client_lsn, fallback=Route.DOWN)
        if state.wrote:
            lsn = _primary_lsn(routing)
            if lsn is not None:
                response.set_signed_cookie(
                    routing.cookie_name,
                    lsn_format(max(lsn, client_lsn or 0)),
                    salt=COOKIE_SALT,
                    max_age=routing.cookie_seconds,
                    secure=request.is_secure(),
                    httponly=True,
                    samesite="Lax",
                )
        return response

    def _run(
        self,
        request: HttpRequest,
        client_lsn: int | None,
        *,
        fallback: Route | None = None,
    ) -> tuple[RequestRoute, HttpResponseBase]:
        state = RequestRoute(
            safe=request.method in SAFE_METHODS,
            client_lsn=client_lsn,
            fallback=fallback,
        )
        token = request_route_set(state)
        try:
            return state, self.get_response(request)
        finally:
            request_route_reset(token)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        """A replica fault in the view: a stand-in answer, which __call__ replaces
        by running the request again (BackendLossMiddleware, outside, never
        sees the fault: it would wait for the replica to come back)."""
        state = request_route()
        if state is None or not isinstance(exception, DatabaseError):
            return None
        if _replica_failed(state) is None or not state.safe or state.wrote:
            return None
        return HttpResponse(status=503)
