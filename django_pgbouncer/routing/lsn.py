"""Read-your-writes, the pure core: PostgreSQL's WAL positions (LSNs) as numbers,
the routing decisions, which replica a read may use, and the statement that waits
for a replica to replay a position."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from psycopg import sql

__all__ = [
    "COMMIT_POSITION_SQL",
    "WAIT_FOR_SINCE",
    "ReplicaStatus",
    "Route",
    "lsn_format",
    "lsn_parse",
    "lsn_record_end",
    "replica_choose",
    "wait_statement",
]

# PostgreSQL writes an LSN as two hexadecimal halves of a 64-bit position.
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
# `WAIT FOR LSN` came in PostgreSQL 19 (server_version_num 190000).
WAIT_FOR_SINCE = 190000


def lsn_parse(text: str) -> int | None:
    """'16/B374D848' as a number; None for anything else."""
    found = _LSN.fullmatch(text.strip())
    if found is None:
        return None
    return (int(found.group(1), 16) << 32) + int(found.group(2), 16)


# PostgreSQL's page headers (xlog_internal.h): a WAL segment's first page has the
# long one, every other page the short one.
SHORT_PAGE_HEADER = 24
LONG_PAGE_HEADER = 40

# The primary's position after a client's commit, and the sizes lsn_record_end
# needs. A commit that waited for its flush (synchronous_commit other than off)
# is in the flushed WAL, which is all a replica can receive; an asynchronous one
# is only sure to be below the insert position.
COMMIT_POSITION_SQL = (
    "SELECT CASE WHEN current_setting('synchronous_commit') = 'off' "
    "THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END::text, "
    "current_setting('wal_block_size')::int, "
    "pg_size_bytes(current_setting('wal_segment_size'))"
)


def lsn_record_end(lsn: int, *, block_size: int, segment_size: int) -> int:
    """Where the last record before `lsn` ends. When that record ended exactly at
    a page boundary, pg_current_wal_insert_lsn() points past the next page's
    header, where the next record will start: a position no replica replays to
    until that record comes (measured: 13 s of an idle primary after a
    pg_basebackup, until the next running-transactions record). A record never
    ends inside a header, so the header's end can be taken back to the boundary."""
    header = LONG_PAGE_HEADER if lsn % segment_size == LONG_PAGE_HEADER else 0
    if lsn % block_size == SHORT_PAGE_HEADER and lsn % segment_size >= block_size:
        header = SHORT_PAGE_HEADER
    return lsn - header


def lsn_format(lsn: int) -> str:
    """A number as PostgreSQL writes an LSN ('16/B374D848')."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


class Route(StrEnum):
    """Where a request's reads (or writes) went, and why."""

    REPLICA = "replica"  # a replica that had replayed the client's last write
    WRITE = "write"  # writes go to the primary
    OUTSIDE_REQUEST = "primary_outside_request"  # no middleware: no LSN known
    METHOD = "primary_method"  # POST and the like read what they will write over
    ATOMIC = "primary_atomic"  # inside atomic(): one transaction, one server
    AFTER_WRITE = "primary_after_write"  # this request wrote: read it back
    BEHIND = "primary_behind"  # no replica had replayed the client's last write
    LAGGING = "primary_lagging"  # every replica further behind than the bound
    DOWN = "primary_down"  # every replica unreachable
    # A replica failed under a read-only request, which ran again (on the primary).
    REPLICA_FAILED = "replica_failed"


@dataclass(frozen=True)
class ReplicaStatus:
    """What a replica said of itself (or that it did not answer)."""

    alias: str
    up: bool
    replay_lsn: int = 0
    lag_seconds: float = 0.0


def replica_choose(
    statuses: Iterable[ReplicaStatus], *, client_lsn: int | None, max_lag: float
) -> tuple[str | None, Route]:
    """The first replica that is up, within `max_lag`, and has replayed
    `client_lsn` (None: the client has not written); else None and why not, the
    most hopeful reason first (behind: it may have caught up on the next read)."""
    reasons = set()
    for status in statuses:
        if not status.up:
            reasons.add(Route.DOWN)
        elif status.lag_seconds > max_lag:
            reasons.add(Route.LAGGING)
        elif client_lsn is not None and status.replay_lsn < client_lsn:
            reasons.add(Route.BEHIND)
        else:
            return status.alias, Route.REPLICA
    for reason in (Route.BEHIND, Route.LAGGING):
        if reason in reasons:
            return None, reason
    return None, Route.DOWN


def wait_statement(
    server_version: int, lsn: int, seconds: float
) -> sql.Composable | None:
    """PostgreSQL 19's `WAIT FOR LSN`, bounded, answering a status row instead of
    raising (NO_THROW); None on older servers, where the caller polls instead.
    A utility statement takes no parameters: the values are literals."""
    if server_version < WAIT_FOR_SINCE:
        return None
    return sql.SQL("WAIT FOR LSN {} WITH (TIMEOUT {}, NO_THROW)").format(
        sql.Literal(lsn_format(lsn)), sql.Literal(f"{max(1, round(seconds * 1000))}ms")
    )
