"""Readiness: can this process serve a request that needs the database?

One query through PgBouncer under a short timeout, plus a look at the admin console,
tell apart the states a load balancer and an operator need: ready, PgBouncer
unreachable, PostgreSQL unreachable behind PgBouncer, and the pool saturated.

A check logs in twice (PgBouncer, then its console, each a full SCRAM exchange on
1.18) and sends five SHOW commands: `readiness_cached()` runs at most one per
`CACHE_SECONDS` per process, however many probes arrive, so a flood of probes
cannot exhaust PgBouncer's client slots or PostgreSQL's connections.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import psycopg

from ..errors import redact
from .pool_state import WAIT_THRESHOLD_SECONDS, PoolState, pool_state

__all__ = [
    "CACHE_SECONDS",
    "Readiness",
    "ReadyStatus",
    "readiness_cache_clear",
    "readiness_cached",
    "readiness_check",
]

# Probes come every few seconds (Kubernetes' default period is 10 s); a second of
# staleness costs them nothing.
CACHE_SECONDS = 1.0


class ReadyStatus(StrEnum):
    """What the probes answer, from best to worst."""

    READY = "ready"
    PGBOUNCER_UNREACHABLE = "pgbouncer_unreachable"
    POSTGRES_UNREACHABLE = "postgres_unreachable"
    POOL_SATURATED = "pool_saturated"


_DETAIL = {
    ReadyStatus.READY: "a query went through PgBouncer to PostgreSQL",
    ReadyStatus.PGBOUNCER_UNREACHABLE: "PgBouncer does not answer: is it running, "
    "and does DATABASE_URL name its host and port?",
    ReadyStatus.POSTGRES_UNREACHABLE: "PgBouncer answers, but cannot reach "
    "PostgreSQL behind it (see PgBouncer's log and PostgreSQL's)",
    ReadyStatus.POOL_SATURATED: "clients wait for a server connection: the pool is "
    "too small for the load, or PostgreSQL too slow (DEFAULT_POOL_SIZE, slow "
    "queries); or PgBouncer refuses new clients (MAX_CLIENT_CONN)",
}


@dataclass(frozen=True)
class Readiness:
    status: ReadyStatus
    query: str  # "ok", or the error (no password in it)
    console: str  # "ok", "not configured", or the error
    pools: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.status == ReadyStatus.READY

    @property
    def http_status(self) -> int:
        return 200 if self.ready else 503

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ready": self.ready,
            "detail": _DETAIL[self.status],
            **asdict(self),
        }


def _query_probe(conninfo: dict[str, Any], timeout: float) -> tuple[str, bool]:
    """("ok", True), or (error, whether PgBouncer itself answered)."""
    result: list[tuple[str, bool]] = []

    def probe() -> None:
        try:
            with psycopg.connect(
                **conninfo, autocommit=True, connect_timeout=max(1, int(timeout))
            ) as conn:
                conn.execute("SELECT 1")
            result.append(("ok", True))
        except psycopg.Error as error:
            text = redact(
                " ".join(str(error).split()), [str(conninfo.get("password") or "")]
            )
            answered = (
                error.sqlstate is not None or "FATAL:" in text or ("ERROR:" in text)
            )
            result.append((text, answered))

    # A query waiting for a server connection has no client-side timeout in
    # psycopg; the probe gives up on it instead (the thread ends on its own).
    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 1)
    return result[0] if result else (f"no answer within {timeout:.0f} s", True)


def _saturated(state: PoolState, wait_threshold: float) -> bool:
    # Clients wait, and every server connection is at work: the pool is too small.
    # (Clients that wait while servers are missing mean PostgreSQL is unreachable.)
    return any(
        p.clients_waiting and p.maxwait_seconds >= wait_threshold and p.at_limit
        for p in state.pools
    )


def readiness_check(
    *,
    conninfo: dict[str, Any],
    admin_url: str | None,
    timeout: float = 2.0,
    wait_threshold: float = WAIT_THRESHOLD_SECONDS,
) -> Readiness:
    """`conninfo`: psycopg.connect() arguments for the pooled database."""
    query, answered = _query_probe(conninfo, timeout)
    state = pool_state(admin_url, wait_threshold=wait_threshold)
    console = (
        "ok"
        if state.reachable
        else ("not configured" if not state.configured else state.error)
    )
    pools = [asdict(p) for p in state.pools]
    if state.reachable and _saturated(state, wait_threshold):
        status = ReadyStatus.POOL_SATURATED
    elif query == "ok":
        status = ReadyStatus.READY
    elif "query_wait_timeout" in query or "max_client_conn" in query:
        # PgBouncer's own answers to overload: waited too long, or no client slot.
        status = ReadyStatus.POOL_SATURATED
    elif answered or state.reachable:
        status = ReadyStatus.POSTGRES_UNREACHABLE
    else:
        status = ReadyStatus.PGBOUNCER_UNREACHABLE
    return Readiness(status=status, query=query, console=console, pools=pools)


_cache_lock = threading.Lock()
_cache: dict[tuple[object, ...], tuple[float, Readiness]] = {}


def readiness_cached(
    *,
    conninfo: dict[str, Any],
    admin_url: str | None,
    max_age: float = CACHE_SECONDS,
) -> Readiness:
    """`readiness_check()`, run at most once per `max_age` seconds per process for
    the same servers. Probes that arrive during a check wait for it and share its
    answer, rather than each logging in."""
    key = (tuple(sorted(conninfo.items())), admin_url)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < max_age:
            return hit[1]
        result = readiness_check(conninfo=conninfo, admin_url=admin_url)
        _cache[key] = (time.monotonic(), result)
        return result


def readiness_cache_clear() -> None:
    """Forget the last answers: the next probe checks again."""
    with _cache_lock:
        _cache.clear()
