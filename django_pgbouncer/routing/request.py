"""What the current request has done, for the router: the client's last commit
position (from its cookie), whether a statement that may write ran on the
primary, which replica its reads use, and whether that replica failed under it.

Two execute wrappers keep it: one on the primary notes writes, one on each
replica notes a fault (and leaves the replica alone a while)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.db import DatabaseError, connections
from psycopg.sql import Composable

from ..conf import RoutingSettings
from ..faults import fault_classify, statement_may_write
from ..observe import route_count
from .lsn import Route
from .status import replica_down_mark

__all__ = [
    "RequestRoute",
    "recovery_conflict",
    "request_route",
    "request_route_reset",
    "request_route_set",
    "route_note",
    "wrappers_ensure",
]


@dataclass
class RequestRoute:
    """One run of a request, as the router sees it."""

    safe: bool  # GET, HEAD, OPTIONS: its reads may go to a replica
    client_lsn: int | None  # the client's last commit position, if any
    wrote: bool = False
    replica: str | None = None  # where its reads go, once chosen
    fallback: Route | None = None  # why they go to the primary, once decided
    replica_fault: str | None = None
    replica_conflict: bool = False  # the replica cancelled a query, and is fine
    counted: set[tuple[Route, str]] = field(default_factory=set)


_current: contextvars.ContextVar[RequestRoute | None] = contextvars.ContextVar(
    "pgbouncer_request_route", default=None
)


def request_route() -> RequestRoute | None:
    """The current request's, or None outside one."""
    return _current.get()


def request_route_set(route: RequestRoute) -> contextvars.Token[RequestRoute | None]:
    return _current.set(route)


def request_route_reset(token: contextvars.Token[RequestRoute | None]) -> None:
    _current.reset(token)


def route_note(state: RequestRoute | None, route: Route, alias: str) -> str:
    """Count `route` once per request (per process outside one); `alias`."""
    key = (route, alias)
    if state is None or key not in state.counted:
        if state is not None:
            state.counted.add(key)
        route_count(decision=route.value, alias=alias)
    return alias


class WriteRecorder:
    """On the primary: a statement that may write sends the request's later
    reads to the primary too, and sets the client's LSN cookie."""

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        state = _current.get()
        if state is not None and not state.wrote:
            text = sql
            if isinstance(sql, Composable):
                text = sql.as_string(context["connection"].connection)
            state.wrote = statement_may_write(str(text))
        return execute(sql, params, many, context)


def recovery_conflict(error: BaseException) -> bool:
    """A query a hot standby cancelled because replaying the primary's WAL needed
    what it held (a lock, a row version): the replica is fine, the query is not."""
    raw = error if isinstance(error, psycopg.Error) else error.__cause__
    return (
        isinstance(raw, psycopg.Error)
        and raw.sqlstate == "40001"
        and "conflict with recovery" in str(raw)
    )


class ReplicaFaultRecorder:
    """On a replica: a connection fault marks it down, and the request as one
    to run again on the primary (ReadYourWritesMiddleware); so does a recovery
    conflict, without marking it down."""

    def __init__(self, alias: str, down_seconds: float) -> None:
        self.alias, self.down_seconds = alias, down_seconds

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        try:
            return execute(sql, params, many, context)
        except DatabaseError as error:
            conn = context["connection"]
            closed = conn.connection is None or conn.connection.closed
            conflict = recovery_conflict(error)
            fault = (
                None if conflict else fault_classify(error, connection_closed=closed)
            )
            state = _current.get()
            if state is not None and (conflict or fault is not None):
                state.replica_fault, state.replica_conflict = self.alias, conflict
            if fault is not None:
                replica_down_mark(self.alias, self.down_seconds, close=False)
            raise


def wrappers_ensure(routing: RoutingSettings) -> None:
    """The two recorders on this thread's connections, once each (first in
    line, as middleware.RequestRecorder is)."""
    primary = connections[routing.primary].execute_wrappers
    if not any(isinstance(w, WriteRecorder) for w in primary):
        primary.insert(0, WriteRecorder())
    for alias in routing.replicas:
        wrappers = connections[alias].execute_wrappers
        if not any(isinstance(w, ReplicaFaultRecorder) for w in wrappers):
            wrappers.insert(0, ReplicaFaultRecorder(alias, routing.down_seconds))
