"""Replicas in /metrics: where requests' reads and writes went and why (counted
per process, added up across workers like the other Django-side counters), and
each replica's lag, asked of it at scrape time through its PgBouncer database.

`django_pgbouncer_routes_total{decision, alias}` counts a decision once per
request that made it (django_pgbouncer.routing.Route names them: replica, write,
primary_after_write, primary_behind, primary_lagging, primary_down, ...;
replica_failed: a replica failed under a read-only request, which ran again).
`django_pgbouncer_replica_up`, `..._replica_lag_seconds` (0 when it has replayed
all it received; else the age of the last transaction it replayed) and
`..._replica_lag_bytes` (the primary's WAL insert position minus the replica's
replay position) are per replica alias.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..conf import alias_conninfo, app_settings, routing_settings

__all__ = [
    "ReplicaCollector",
    "replica_metrics_register",
    "route_count",
]

ROUTES = Counter(
    "django_pgbouncer_routes",
    "Requests whose reads or writes the replica router sent somewhere, by decision",
    ["decision", "alias"],
    registry=None,
)
# A scrape must not hang on a replica that does not answer.
CONNECT_SECONDS = 2
# NULL replay position: not in recovery, so not a replica (promoted, or not one).
# The byte lag is reckoned by the replica from the primary's position, passed in.
_REPLICA_SQL = (
    "SELECT pg_last_wal_replay_lsn() IS NOT NULL, CASE WHEN "
    "pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 ELSE "
    "COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) "
    "END::float8, pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())::float8"
)


def route_count(*, decision: str, alias: str) -> None:
    """One request's reads or writes sent to `alias` for `decision`."""
    ROUTES.labels(decision, alias).inc()


def _ask(
    entry: Mapping[str, Any], query: str, params: tuple[Any, ...] = ()
) -> tuple[Any, ...] | None:
    """One row of `query` over a connection of its own; None if it fails."""
    try:
        with psycopg.connect(
            **alias_conninfo(entry), connect_timeout=CONNECT_SECONDS, autocommit=True
        ) as conn:
            return conn.execute(query, params, prepare=False).fetchone()
    except psycopg.Error:
        return None


class ReplicaCollector(Collector):
    """Each replica's state, asked when /metrics is scraped."""

    def __init__(
        self,
        databases: Mapping[str, Mapping[str, Any]],
        primary: str,
        replicas: tuple[str, ...],
    ) -> None:
        self.databases, self.primary, self.replicas = databases, primary, replicas

    def collect(self) -> Iterator[Metric]:
        labels = ["alias"]
        up = GaugeMetricFamily(
            "django_pgbouncer_replica_up", "Replica answered", labels=labels
        )
        seconds = GaugeMetricFamily(
            "django_pgbouncer_replica_lag_seconds",
            "Age of the last transaction replayed, 0 with nothing left to replay",
            labels=labels,
        )
        size = GaugeMetricFamily(
            "django_pgbouncer_replica_lag_bytes",
            "WAL the primary has written that the replica has not replayed",
            labels=labels,
        )
        head = _ask(
            self.databases[self.primary], "SELECT pg_current_wal_insert_lsn()::text"
        )
        for alias in self.replicas:
            row = _ask(self.databases[alias], _REPLICA_SQL, (head and head[0],))
            up.add_metric([alias], 1 if row and row[0] else 0)
            if not (row and row[0]):
                continue
            seconds.add_metric([alias], row[1])
            if row[2] is not None:
                size.add_metric([alias], max(0.0, row[2]))
        yield from (up, seconds, size)


class _Own(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from ROUTES.collect()


def replica_metrics_register(
    registry: CollectorRegistry, *, multiprocess: bool
) -> None:
    """The routing counters (unless the multiprocess collector reads them from
    their files) and, with replicas configured, their lag."""
    if not multiprocess:
        registry.register(_Own())
    routing = routing_settings()
    if routing.replicas:
        registry.register(
            ReplicaCollector(
                app_settings().databases, routing.primary, routing.replicas
            )
        )
