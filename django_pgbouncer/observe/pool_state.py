"""The pool as operators read it: one row per pool, trouble named. A pure core
(`pool_views`) over the admin console's rows, and a shell (`pool_state`) that asks."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError, ConsoleUnavailable
from .console import (
    ConfigItem,
    Database,
    Pool,
    Stat,
    Version,
    console_connect,
)

__all__ = ["PoolState", "PoolView", "pool_state", "pool_views"]

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
class PoolState:
    configured: bool
    reachable: bool
    error: str = ""
    version: str = ""
    pools: tuple[PoolView, ...] = ()
    checked_at: float = field(default_factory=time.time)

    @property
    def trouble(self) -> bool:
        return any(p.trouble for p in self.pools)

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


def pool_state(
    admin_url: str | None, *, wait_threshold: float = WAIT_THRESHOLD_SECONDS
) -> PoolState:
    """Ask the admin console; "not configured" and "unreachable" are states too."""
    if not admin_url:
        return PoolState(
            configured=False,
            reachable=False,
            error="PGBOUNCER_ADMIN_URL is not set, so the pool cannot be seen. Set it "
            "to postgres://USER:PASSWORD@HOST:PORT/pgbouncer, USER being in "
            "PgBouncer's stats_users or admin_users.",
        )
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
        return PoolState(configured=True, reachable=False, error=str(error))
    version = versions[0].version if versions else ""
    return PoolState(configured=True, reachable=True, version=version, pools=views)
