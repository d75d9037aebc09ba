"""A cheap guard against connections that PgBouncer has closed.

Django's CONN_HEALTH_CHECKS sends `SELECT 1` before a request reuses a connection:
through PgBouncer that is a round trip to PostgreSQL, and it cost this site a fifth
of its throughput (bench/results). Behind PgBouncer the only way a kept connection
dies is PgBouncer itself closing it (a restart, client_idle_timeout); PostgreSQL
restarts stay behind the pooler. A closed socket is readable: one `poll()` with no
timeout (about a microsecond) tells, and the connection is dropped before the
request, which then opens a fresh one. `poll()`, not `select()`: select() refuses a
descriptor of 1024 or more, which a busy worker reaches.
"""

from __future__ import annotations

import select
from typing import Any

from django.db import connections

from ..conf import alias_options

__all__ = ["stale_connections_close"]


def _peer_closed(raw: Any) -> bool:
    """An idle client connection has nothing to read unless the peer closed it
    (or sent an error before closing it)."""
    try:
        fd = raw.pgconn.socket
    except Exception:  # already closed, or not a psycopg connection
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


def stale_connections_close(sender: object, **kwargs: object) -> None:
    """`request_started` receiver: close kept pooled connections PgBouncer closed."""
    for conn in connections.all(initialized_only=True):
        if (
            alias_options(conn.settings_dict, alias=conn.alias).pool_mode
            and conn.connection is not None
            and not conn.in_atomic_block
            and _peer_closed(conn.connection)
        ):
            conn.close()
