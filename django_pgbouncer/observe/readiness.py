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
from collections.abc import Sequence
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
# How long the query may wait before the pool is looked at for the reason.
LOOK_AFTER_SECONDS = 0.75


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


class _QueryProbe:
    """One query through PgBouncer, in a thread of its own so that the pool can be
    looked at while it waits. Its answer: ("ok", True), or (error, whether
    PgBouncer itself answered)."""

    def __init__(self, conninfo: dict[str, Any], timeout: float) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout + 1
        self.result: list[tuple[str, bool]] = []
        # A query waiting for a server connection has no client-side timeout in
        # psycopg; the probe gives up on it instead (the thread ends on its own).
        self.worker = threading.Thread(target=self._run, args=(conninfo,), daemon=True)
        self.worker.start()

    def _run(self, conninfo: dict[str, Any]) -> None:
        self.result.append(_query_once(conninfo, self.timeout))

    def answered(self, within: float) -> bool:
        self.worker.join(max(0.0, min(within, self.deadline - time.monotonic())))
        return bool(self.result)

    def answer(self) -> tuple[str, bool]:
        if self.answered(self.deadline - time.monotonic()):
            return self.result[0]
        return (f"no answer within {self.timeout:.0f} s", True)


def _query_once(conninfo: dict[str, Any], timeout: float) -> tuple[str, bool]:
    try:
        with psycopg.connect(
            **conninfo, autocommit=True, connect_timeout=max(1, int(timeout))
        ) as conn:
            conn.execute("SELECT 1")
        return ("ok", True)
    except psycopg.Error as error:
        text = redact(
            " ".join(str(error).split()), [str(conninfo.get("password") or "")]
        )
        answered = error.sqlstate is not None or "FATAL:" in text or "ERROR:" in text
        return (text, answered)


def _saturated(state: PoolState, wait_threshold: float) -> bool:
    # Clients wait, and every server connection is at work: the pool is too small.
    # (Clients that wait while servers are missing mean PostgreSQL is unreachable.)
    return any(
        p.clients_waiting and p.maxwait_seconds >= wait_threshold and p.at_limit
        for p in state.process_pools()
    )


def _servers_missing(state: PoolState) -> bool:
    # Looked at once the probe has waited LOOK_AFTER_SECONDS: clients wait and the
    # pool has no server connection at all, so PgBouncer cannot log in to
    # PostgreSQL (down, restarting, refusing). A login to a live server takes
    # milliseconds, so this is no false alarm. (1.18's SHOW POOLS says maxwait 0
    # for a client waiting on the pool's first login: it cannot tell this.)
    return any(
        p.clients_waiting and p.servers_active + p.servers_idle + p.servers_used == 0
        for p in state.process_pools()
    )


def readiness_check(
    *,
    conninfo: dict[str, Any],
    admin_url: str | None,
    admin_urls: Sequence[str] = (),
    timeout: float = 2.0,
    wait_threshold: float = WAIT_THRESHOLD_SECONDS,
) -> Readiness:
    """`conninfo`: psycopg.connect() arguments for the pooled database;
    `admin_urls`: each PgBouncer process's console, when there are several (a
    pool saturated or without servers in any one of them counts).

    The pool is looked at while the query still waits, if it waits: a
    PostgreSQL that is back before the query's timeout (a restart, a crash
    restarted at once) would otherwise pass for a slow "ready"."""
    probe = _QueryProbe(conninfo, timeout)
    waited = not probe.answered(within=LOOK_AFTER_SECONDS)
    state = pool_state(admin_url, admin_urls=admin_urls, wait_threshold=wait_threshold)
    query, answered = probe.answer()
    console = (
        "ok"
        if state.reachable
        else ("not configured" if not state.configured else state.error)
    )
    pools = [asdict(p) for p in state.pools]
    if state.reachable and _saturated(state, wait_threshold):
        status = ReadyStatus.POOL_SATURATED
    elif waited and state.reachable and _servers_missing(state):
        status = ReadyStatus.POSTGRES_UNREACHABLE
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
    admin_urls: Sequence[str] = (),
    max_age: float = CACHE_SECONDS,
) -> Readiness:
    """`readiness_check()`, run at most once per `max_age` seconds per process for
    the same servers. Probes that arrive during a check wait for it and share its
    answer, rather than each logging in."""
    key = (tuple(sorted(conninfo.items())), admin_url, tuple(admin_urls))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < max_age:
            return hit[1]
        result = readiness_check(
            conninfo=conninfo, admin_url=admin_url, admin_urls=admin_urls
        )
        _cache[key] = (time.monotonic(), result)
        return result


def readiness_cache_clear() -> None:
    """Forget the last answers: the next probe checks again."""
    with _cache_lock:
        _cache.clear()
