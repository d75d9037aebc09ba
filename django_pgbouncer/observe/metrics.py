"""Prometheus metrics: PgBouncer's state under pgbouncer_exporter's names (asked of
the admin console at scrape time), and the Django side, counted per process and
added up across gunicorn's workers (prometheus_client's multiprocess mode, on when
PROMETHEUS_MULTIPROC_DIR is set; config/gunicorn.py sets it)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import ConfigError, ConsoleUnavailable
from ..guard import Finding
from .console import console_connect
from .replicas import replica_metrics_register

__all__ = [
    "PgBouncerCollector",
    "metrics_install",
    "metrics_render",
    "request_retry_count",
    "unavailable_response_count",
]

# registry=None: collected through metrics_render(), by process or across them.
CONNECTIONS = Counter(
    "django_db_connections_opened",
    "Database connections opened",
    ["alias"],
    registry=None,
)
QUERIES = Counter("django_db_queries", "Queries executed", ["alias"], registry=None)
ERRORS = Counter(
    "django_db_query_errors",
    "Queries that raised an error",
    ["alias"],
    registry=None,
)
GUARD_FINDINGS = Counter(
    "django_pgbouncer_guard_findings",
    "Statements the runtime guard found to leave session state",
    ["alias", "kind"],
    registry=None,
)
# The web side of faults (django_pgbouncer.middleware): `fault` is what the database
# did (backend_lost, postgres_unreachable, pgbouncer_unreachable, query_wait_timeout,
# max_client_conn); a retry's `outcome` is ok or failed; a 503's `reason` says why the
# request was not run again (not_retryable, wrote, in_atomic, method, late,
# retry_failed).
RETRIES = Counter(
    "django_pgbouncer_request_retries",
    "GET and HEAD requests run again on a fresh connection after a database fault",
    ["fault", "outcome"],
    registry=None,
)
UNAVAILABLE = Counter(
    "django_pgbouncer_unavailable_responses",
    "Requests answered 503 with Retry-After for a database fault",
    ["fault", "reason"],
    registry=None,
)
_OWN = (CONNECTIONS, QUERIES, ERRORS, GUARD_FINDINGS, RETRIES, UNAVAILABLE)


class QueryCounter:
    """An execute wrapper that counts queries and errors for its alias."""

    def __init__(self, alias: str) -> None:
        self.queries = QUERIES.labels(alias)
        self.errors = ERRORS.labels(alias)

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        self.queries.inc()
        try:
            return execute(sql, params, many, context)
        except Exception:
            self.errors.inc()
            raise


def metrics_install(
    sender: object, connection: BaseDatabaseWrapper, **kwargs: object
) -> None:
    """`connection_created` receiver: count the connection, and its queries."""
    CONNECTIONS.labels(connection.alias).inc()
    if not any(isinstance(w, QueryCounter) for w in connection.execute_wrappers):
        connection.execute_wrappers.insert(0, QueryCounter(connection.alias))


def guard_finding_count(
    sender: object, alias: str, finding: Finding, **kwargs: object
) -> None:
    """`session_state_found` receiver."""
    GUARD_FINDINGS.labels(alias, finding.hazard.kind).inc()


def request_retry_count(*, fault: str, outcome: str) -> None:
    """One request run again after `fault`; `outcome`: ok or failed."""
    RETRIES.labels(fault, outcome).inc()


def unavailable_response_count(*, fault: str, reason: str) -> None:
    """One 503 answered for `fault`, not retried for `reason`."""
    UNAVAILABLE.labels(fault, reason).inc()


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class PgBouncerCollector(Collector):
    """PgBouncer's admin console as pgbouncer_exporter (0.11+) names it."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("pgbouncer_up", "The admin console answered")
        try:
            with console_connect(self.admin_url) as console:
                version = console.show("VERSION")
                pools = console.show("POOLS")
                stats = console.show("STATS")
                databases = console.show("DATABASES")
                config = {c.key: c.value for c in console.show("CONFIG")}
        except (ConsoleUnavailable, ConfigError):  # ConfigError: a malformed URL
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        info = _gauge("pgbouncer_version_info", "PgBouncer version", ["version"])
        info.add_metric([version[0].version if version else ""], 1)
        yield info
        yield from self._pools(pools)
        yield from self._stats(stats)
        labels = ["name", "database", "pool_mode"]
        current = _gauge(
            "pgbouncer_databases_current_connections",
            "Server connections of the database",
            labels,
        )
        size = _gauge("pgbouncer_databases_pool_size", "Pool size", labels)
        for db in databases:
            values = [db.name, db.database or "", db.pool_mode or ""]
            current.add_metric(values, db.current_connections)
            size.add_metric(values, db.pool_size)
        yield current
        yield size
        max_client = GaugeMetricFamily(
            "pgbouncer_config_max_client_connections", "max_client_conn"
        )
        max_client.add_metric([], float(config.get("max_client_conn", 0)))
        yield max_client

    @staticmethod
    def _pools(pools: list[Any]) -> Iterator[Metric]:
        fields = {
            "client_active_connections": ("cl_active", "Clients linked to a server"),
            "client_waiting_connections": ("cl_waiting", "Clients waiting"),
            "server_active_connections": ("sv_active", "Servers linked to a client"),
            "server_idle_connections": ("sv_idle", "Servers idle and usable"),
            "server_used_connections": ("sv_used", "Servers idle, to be checked"),
            "server_testing_connections": ("sv_tested", "Servers being tested"),
            "server_login_connections": ("sv_login", "Servers logging in"),
        }
        for suffix, (attr, doc) in fields.items():
            family = _gauge(f"pgbouncer_pools_{suffix}", doc, ["database", "user"])
            for pool in pools:
                family.add_metric([pool.database, pool.user], getattr(pool, attr))
            yield family
        wait = _gauge(
            "pgbouncer_pools_client_maxwait_seconds",
            "Longest wait of a client",
            ["database", "user"],
        )
        for pool in pools:
            wait.add_metric([pool.database, pool.user], pool.maxwait_seconds)
        yield wait

    @staticmethod
    def _stats(stats: list[Any]) -> Iterator[Metric]:
        totals = {
            "queries_pooled": ("total_query_count", 1, "Queries pooled"),
            "sql_transactions_pooled": ("total_xact_count", 1, "Transactions"),
            "queries_duration_seconds": ("total_query_time", 1e-6, "Query time"),
            "client_wait_seconds": ("total_wait_time", 1e-6, "Client wait time"),
            "received_bytes": ("total_received", 1, "Bytes received"),
            "sent_bytes": ("total_sent", 1, "Bytes sent"),
        }
        for suffix, (attr, scale, doc) in totals.items():
            family = CounterMetricFamily(
                f"pgbouncer_stats_totals_{suffix}", doc, labels=["database"]
            )
            for stat in stats:
                family.add_metric([stat.database], getattr(stat, attr) * scale)
            yield family


class _Own(Collector):
    def collect(self) -> Iterator[Metric]:
        for metric in _OWN:
            yield from metric.collect()


def metrics_render(admin_url: str | None, admin_urls: Sequence[str] = ()) -> bytes:
    """The text exposition: PgBouncer (when configured: `admin_urls`, each
    process's console, when there are several) and the Django side."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Own())
    if len(admin_urls) > 1:
        from .process_metrics import PgBouncerProcessesCollector  # builds on this

        registry.register(PgBouncerProcessesCollector(admin_urls))
    elif admin_url or admin_urls:
        registry.register(PgBouncerCollector(admin_url or admin_urls[0]))
    multiple = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    replica_metrics_register(registry, multiprocess=multiple)  # routing, lag
    return generate_latest(registry)
