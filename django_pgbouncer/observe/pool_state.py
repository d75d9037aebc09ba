"""The pool as operators read it: one row per pool, trouble named. A pure core
(`pool_views`, `pool_views_sum`) over the admin console's rows, and a shell
(`pool_state`) that asks.

Several PgBouncer processes may share one port (so_reuseport); each has a console
of its own address. `pool_state` then asks each: its pools are the sum over the
processes, and `processes` shows each one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..databases import postgres_url_parse
from ..errors import ConfigError, ConsoleUnavailable
from .console import (
    ConfigItem,
    Database,
    Pool,
    Stat,
    Version,
    console_connect,
)

__all__ = [
    "PoolState",
    "PoolView",
    "ProcessState",
    "console_address",
    "pool_state",
    "pool_views",
    "pool_views_sum",
]

# A client that has waited this long for a server connection means the pool is too
# small for the load (or PostgreSQL too slow): half of a typical request budget.
WAIT_THRESHOLD_SECONDS = 1.0


@dataclass(frozen=True)
class PoolView:
    database: str
    user: str
    mode: str
    clients_active: int
    clients_waiting: int
    servers_active: int
    servers_idle: int
    servers_used: int
    pool_size: int
    maxwait_seconds: float
    queries_per_second: int  # PgBouncer's average over its stats_period
    transactions_per_second: int
    avg_query_ms: float
    avg_wait_ms: float
    total_query_count: int  # for rates between two looks
    total_xact_count: int
    at_limit: bool = False  # every server connection the pool may have is working
    wait_exceeded: bool = False  # the longest wait passed the threshold
    trouble: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcessState:
    """One PgBouncer process, by its console's address (host:port, no password)."""

    address: str
    reachable: bool
    error: str = ""
    version: str = ""
    pools: tuple[PoolView, ...] = ()
    # Its pools' totals, for the dashboard's row per process.
    clients_active: int = 0
    clients_waiting: int = 0
    servers_active: int = 0
    servers_idle: int = 0
    transactions_per_second: int = 0
    total_xact_count: int = 0


@dataclass(frozen=True)
class PoolState:
    configured: bool
    reachable: bool
    error: str = ""
    version: str = ""
    pools: tuple[PoolView, ...] = ()
    checked_at: float = field(default_factory=time.time)
    # Each process when there are several (pools: their sum); else empty.
    processes: tuple[ProcessState, ...] = ()

    @property
    def trouble(self) -> bool:
        return any(p.trouble for p in self.pools) or any(
            not p.reachable for p in self.processes
        )

    def process_pools(self) -> tuple[PoolView, ...]:
        """Every process's own pools (a client waits in one process's pool)."""
        if not self.processes:
            return self.pools
        return tuple(pool for p in self.processes for pool in p.pools)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "trouble": self.trouble}


def _pool_view(pool: Pool, stat: Stat, size: int, wait_threshold: float) -> PoolView:
    # Linked to a client and working; servers logging in do not count, or a
    # PostgreSQL that refuses logins would look like a busy pool.
    busy = pool.sv_active
    trouble = []
    if pool.cl_waiting:
        trouble.append(f"{pool.cl_waiting} clients waiting")
    if pool.maxwait_seconds >= wait_threshold:
        trouble.append(f"longest wait {pool.maxwait_seconds:.1f} s")
    if busy >= size:
        trouble.append(f"pool at its limit ({busy} of {size})")
    return PoolView(
        database=pool.database,
        user=pool.user,
        mode=pool.pool_mode,
        clients_active=pool.cl_active,
        clients_waiting=pool.cl_waiting,
        servers_active=pool.sv_active,
        servers_idle=pool.sv_idle,
        servers_used=pool.sv_used,
        pool_size=size,
        maxwait_seconds=round(pool.maxwait_seconds, 3),
        queries_per_second=stat.avg_query_count,
        transactions_per_second=stat.avg_xact_count,
        avg_query_ms=round(stat.avg_query_time / 1000, 3),
        avg_wait_ms=round(stat.avg_wait_time / 1000, 3),
        total_query_count=stat.total_query_count,
        total_xact_count=stat.total_xact_count,
        at_limit=busy >= size,
        wait_exceeded=pool.maxwait_seconds >= wait_threshold,
        trouble=tuple(trouble),
    )


def pool_views(
    pools: list[Pool],
    stats: list[Stat],
    databases: list[Database],
    config: list[ConfigItem],
    *,
    wait_threshold: float = WAIT_THRESHOLD_SECONDS,
) -> tuple[PoolView, ...]:
    """Join the console's rows per pool and name what is wrong."""
    values = {item.key: item.value for item in config}
    default_size = int(values.get("default_pool_size", "20") or 20)
    sizes = {d.name: d.pool_size or default_size for d in databases}
    by_db = {s.database: s for s in stats}
    return tuple(
        _pool_view(
            pool,
            by_db.get(pool.database, Stat(database=pool.database)),
            sizes.get(pool.database, default_size),
            wait_threshold,
        )
        for pool in pools
        if pool.database != "pgbouncer"  # the admin console itself
    )


_SUMMED = (
    "clients_active",
    "clients_waiting",
    "servers_active",
    "servers_idle",
    "servers_used",
    "pool_size",
    "queries_per_second",
    "transactions_per_second",
    "total_query_count",
    "total_xact_count",
)


def _weighted(values: list[tuple[float, int]]) -> float:
    """The mean of `values` (value, weight) by weight; by count with no weight."""
    weight = sum(w for _, w in values)
    if not weight:
        return round(sum(v for v, _ in values) / len(values), 3)
    return round(sum(v * w for v, w in values) / weight, 3)


def _views_sum(views: list[tuple[str, PoolView]]) -> PoolView:
    first = views[0][1]
    pools = [v for _, v in views]
    return replace(
        first,
        **{name: sum(getattr(v, name) for v in pools) for name in _SUMMED},
        maxwait_seconds=max(v.maxwait_seconds for v in pools),
        avg_query_ms=_weighted([(v.avg_query_ms, v.queries_per_second) for v in pools]),
        avg_wait_ms=_weighted(
            [(v.avg_wait_ms, v.transactions_per_second) for v in pools]
        ),
        # A client waits in the pool of the process it landed on: one full pool
        # is trouble even while another has room.
        at_limit=any(v.at_limit for v in pools),
        wait_exceeded=any(v.wait_exceeded for v in pools),
        trouble=tuple(f"process {a}: {t}" for a, v in views for t in v.trouble),
    )


def pool_views_sum(
    processes: Sequence[tuple[str, Sequence[PoolView]]],
) -> tuple[PoolView, ...]:
    """Each pool summed over the processes (address, pools) that have it: counts
    and rates added, pool sizes too (each process has its own), the longest wait
    the longest, average times weighted by each process's rate; trouble named
    with its process."""
    grouped: dict[tuple[str, str], list[tuple[str, PoolView]]] = {}
    for address, views in processes:
        for view in views:
            grouped.setdefault((view.database, view.user), []).append((address, view))
    return tuple(_views_sum(views) for views in grouped.values())


def console_address(admin_url: str) -> str:
    """host:port of a console URL: how a process is named (no password)."""
    try:
        url = postgres_url_parse(admin_url, variable="PGBOUNCER_ADMIN_URLS")
    except ConfigError:
        return "(a malformed URL)"
    return f"{url.host}:{url.port}"


def _process_state(admin_url: str, wait_threshold: float) -> ProcessState:
    address = console_address(admin_url)
    try:
        with console_connect(admin_url) as console:
            versions: list[Version] = console.show("VERSION")
            views = pool_views(
                console.show("POOLS"),
                console.show("STATS"),
                console.show("DATABASES"),
                console.show("CONFIG"),
                wait_threshold=wait_threshold,
            )
    except (ConsoleUnavailable, ConfigError) as error:
        # ConfigError: a malformed URL; the state says so (without the password)
        # rather than failing the page or the probe.
        return ProcessState(address, reachable=False, error=str(error))
    version = versions[0].version if versions else ""
    totals = {
        name: sum(getattr(v, name) for v in views)
        for name in (
            "clients_active",
            "clients_waiting",
            "servers_active",
            "servers_idle",
            "transactions_per_second",
            "total_xact_count",
        )
    }
    return ProcessState(address, True, "", version, views, **totals)


def pool_state(
    admin_url: str | None,
    *,
    admin_urls: Sequence[str] = (),
    wait_threshold: float = WAIT_THRESHOLD_SECONDS,
) -> PoolState:
    """Ask the admin console, or each of `admin_urls` (one per process) when
    there are several; "not configured" and "unreachable" are states too."""
    urls = [u for u in admin_urls if u] or ([admin_url] if admin_url else [])
    if not urls:
        return PoolState(
            configured=False,
            reachable=False,
            error="PGBOUNCER_ADMIN_URL is not set, so the pool cannot be seen. Set it "
            "to postgres://USER:PASSWORD@HOST:PORT/pgbouncer, USER being in "
            "PgBouncer's stats_users or admin_users.",
        )
    states = tuple(_process_state(url, wait_threshold) for url in urls)
    if len(states) == 1:
        (one,) = states
        return PoolState(True, one.reachable, one.error, one.version, one.pools)
    up = [p for p in states if p.reachable]
    return PoolState(
        configured=True,
        reachable=bool(up),
        error="; ".join(p.error for p in states if not p.reachable),
        version=up[0].version if up else "",
        pools=pool_views_sum([(p.address, p.pools) for p in up]),
        processes=states,
    )
