"""What each replica has replayed, asked over the very connection the read will
use (each replica is a PgBouncer database of its own, so the answer and the read
come from the same server), kept a moment per process, and which replica a read
may use.

A kept status is safe for read-your-writes: a replica's replay position only
moves forward, so an old answer understates it. When it says "behind", the
replica is asked again before the read goes to the primary.
"""

from __future__ import annotations

import itertools
import logging
import time

from django.db import DatabaseError, connections

from ..conf import RoutingSettings
from .lsn import ReplicaStatus, Route, lsn_parse, replica_choose, wait_statement

__all__ = ["replica_down_mark", "replica_pick", "replica_status", "statuses_forget"]

logger = logging.getLogger("django_pgbouncer.routing")

# Lag as monitoring reads it: nothing to replay is no lag, however long ago the
# last transaction was; else the age of the last one replayed (an overstatement
# after an idle spell, which only sends reads to the primary). NULL replay
# position: not in recovery (promoted), not a replica to read from.
STATUS_SQL = (
    "SELECT pg_last_wal_replay_lsn()::text, CASE WHEN pg_last_wal_receive_lsn() "
    "= pg_last_wal_replay_lsn() THEN 0 ELSE COALESCE(EXTRACT(EPOCH FROM now() "
    "- pg_last_xact_replay_timestamp()), 0) END::float8"
)
POLL_SECONDS = 0.01

# Per process, shared by its threads: a dict's get and set are atomic, and two
# threads asking at once cost one extra query.
_statuses: dict[str, tuple[float, ReplicaStatus]] = {}
_down_until: dict[str, float] = {}
_turns = itertools.count()


def statuses_forget() -> None:
    """Forget every kept status and down mark (for tests)."""
    _statuses.clear()
    _down_until.clear()


def replica_down_mark(alias: str, seconds: float, *, close: bool = True) -> None:
    """Leave `alias` alone for `seconds`: no read or status query goes there
    until then. `close`: close this thread's connection to it now (not from
    inside one of its own statements)."""
    _down_until[alias] = time.monotonic() + seconds
    _statuses.pop(alias, None)
    if close:
        connections[alias].close()


def _ask(alias: str) -> ReplicaStatus:
    conn = connections[alias]
    try:
        with conn.cursor() as cursor:
            cursor.execute(STATUS_SQL)
            row = cursor.fetchone()
    except DatabaseError as error:
        logger.warning("replica %s did not answer (%s): skipped", alias, type(error))
        return ReplicaStatus(alias, up=False)
    lsn = lsn_parse(row[0]) if row and row[0] else None
    if lsn is None:
        logger.warning("replica %s is not in recovery: skipped", alias)
        return ReplicaStatus(alias, up=False)
    return ReplicaStatus(alias, up=True, replay_lsn=lsn, lag_seconds=float(row[1]))


def replica_status(
    alias: str, routing: RoutingSettings, *, fresh: bool = False
) -> ReplicaStatus:
    """`alias`'s status: kept for `status_seconds` unless `fresh`; down for
    `down_seconds` after it failed to answer."""
    now = time.monotonic()
    if _down_until.get(alias, 0.0) > now:
        return ReplicaStatus(alias, up=False)
    kept = _statuses.get(alias)
    if kept is not None and not fresh and now - kept[0] < routing.status_seconds:
        return kept[1]
    status = _ask(alias)
    if status.up:
        _statuses[alias] = (now, status)
    else:
        replica_down_mark(alias, routing.down_seconds)
    return status


def _replayed_wait(alias: str, lsn: int, seconds: float) -> bool:
    """Whether `alias` replays `lsn` within `seconds`: PostgreSQL 19's WAIT FOR
    LSN where the server has it, else by asking every POLL_SECONDS."""
    conn = connections[alias]
    try:
        conn.ensure_connection()
        statement = wait_statement(conn.connection.info.server_version, lsn, seconds)
        if statement is not None:
            # Past the execute wrappers: the guard's parser predates WAIT FOR.
            row = conn.connection.execute(statement).fetchone()
            return bool(row and row[0] == "success")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_last_wal_replay_lsn()::text")
                row = cursor.fetchone()
            replayed = lsn_parse(row[0]) if row and row[0] else None
            if replayed is not None and replayed >= lsn:
                return True
    except DatabaseError:
        return False
    return False


def replica_pick(
    client_lsn: int | None, routing: RoutingSettings
) -> tuple[str | None, Route]:
    """A replica for a request's reads, or None and why the primary serves them.
    Each request starts from the next replica in turn, to spread the reads."""
    start = next(_turns) % len(routing.replicas)
    order = routing.replicas[start:] + routing.replicas[:start]
    statuses = [replica_status(alias, routing) for alias in order]
    alias, route = replica_choose(
        statuses, client_lsn=client_lsn, max_lag=routing.max_lag_seconds
    )
    if route is not Route.BEHIND or client_lsn is None:
        return alias, route
    behind = [s.alias for s in statuses if s.up and s.replay_lsn < client_lsn]
    statuses = [replica_status(name, routing, fresh=True) for name in behind]
    alias, route = replica_choose(
        statuses, client_lsn=client_lsn, max_lag=routing.max_lag_seconds
    )
    waitable = [
        s for s in statuses if s.up and s.lag_seconds <= routing.max_lag_seconds
    ]
    if alias is None and waitable and routing.wait_seconds > 0:
        nearest = max(waitable, key=lambda s: s.replay_lsn)
        if _replayed_wait(nearest.alias, client_lsn, routing.wait_seconds):
            return nearest.alias, Route.REPLICA
    return alias, route
