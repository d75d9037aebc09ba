"""The database router: writes, and every read inside `atomic()` or after a
write, to the primary; other reads of a request that ReadYourWritesMiddleware
watches to a replica that has replayed the client's last commit.

Add it with the middleware (settings.py does, when REPLICA_DATABASE_URLS names
replicas)::

    DATABASE_ROUTERS = ["django_pgbouncer.routing.ReplicaRouter"]
    PGBOUNCER_ROUTING = {"primary": "default", "replicas": ["replica1"]}

Reads outside a request (commands, the shell, a thread of its own) go to the
primary: nothing says what their reader last wrote.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

from ..conf import routing_settings
from .lsn import Route
from .request import request_route, route_note
from .status import replica_pick

__all__ = ["ReplicaRouter"]


class ReplicaRouter:
    """Primary for writes; a caught-up replica for a request's reads."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        routing = routing_settings()
        if not routing.replicas:
            return None
        primary = routing.primary
        state = request_route()
        if state is None:
            return route_note(None, Route.OUTSIDE_REQUEST, primary)
        if not state.safe:
            return route_note(state, Route.METHOD, primary)
        if state.wrote:
            return route_note(state, Route.AFTER_WRITE, primary)
        if connections[primary].in_atomic_block:
            return route_note(state, Route.ATOMIC, primary)
        if state.replica is None and state.fallback is None:
            state.replica, route = replica_pick(state.client_lsn, routing)
            if state.replica is None:
                state.fallback = route
        if state.replica is not None:
            return route_note(state, Route.REPLICA, state.replica)
        assert state.fallback is not None
        return route_note(state, state.fallback, primary)

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        routing = routing_settings()
        if not routing.replicas:
            return None
        return route_note(request_route(), Route.WRITE, routing.primary)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        """Rows read from a replica and the primary are the same rows."""
        routing = routing_settings()
        ours = {routing.primary, *routing.replicas}
        if obj1._state.db in ours and obj2._state.db in ours:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        """Never on a replica: it is read-only, and a copy of the primary."""
        return False if db in routing_settings().replicas else None
