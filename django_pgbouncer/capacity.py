"""Connection budget arithmetic: pure, so its table of cases can be tested."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Capacity", "capacity_problems"]


@dataclass(frozen=True)
class Capacity:
    """What the web tier opens, and what PgBouncer and PostgreSQL allow."""

    processes: int  # web server worker processes
    threads: int  # threads per process; each holds one connection per alias
    pooled_aliases: int  # aliases that go through PgBouncer
    direct_aliases: int  # aliases that go to PostgreSQL itself
    max_client_conn: int  # PgBouncer
    default_pool_size: int  # PgBouncer, per database/user pair
    reserve_pool_size: int  # PgBouncer
    pools: int  # database/user pairs PgBouncer serves
    max_db_connections: int  # PgBouncer, 0 = unlimited
    max_connections: int  # PostgreSQL
    superuser_reserved_connections: int  # PostgreSQL

    @property
    def clients(self) -> int:
        return self.processes * self.threads * self.pooled_aliases

    @property
    def pool_servers(self) -> int:
        per_pool = self.default_pool_size + self.reserve_pool_size
        if self.max_db_connections:
            per_pool = min(per_pool, self.max_db_connections)
        return self.pools * per_pool

    @property
    def direct_servers(self) -> int:
        return self.processes * self.threads * self.direct_aliases

    @property
    def server_slots(self) -> int:
        return self.max_connections - self.superuser_reserved_connections


def capacity_problems(c: Capacity) -> list[tuple[str, str]]:
    """(check id, message) for every limit the configuration can exceed."""
    problems = []
    if c.clients > c.max_client_conn:
        problems.append(
            (
                "django_pgbouncer.E007",
                f"{c.processes} processes x {c.threads} threads x {c.pooled_aliases} "
                f"pooled aliases can hold {c.clients} client connections, but "
                f"PgBouncer's max_client_conn is {c.max_client_conn}: the rest are "
                "refused with 'no more connections allowed (max_client_conn)'",
            )
        )
    if c.pool_servers + c.direct_servers > c.server_slots:
        problems.append(
            (
                "django_pgbouncer.E008",
                f"PgBouncer may open {c.pool_servers} server connections "
                f"({c.pools} pools x (default_pool_size {c.default_pool_size} + "
                f"reserve_pool_size {c.reserve_pool_size})) and the direct aliases "
                f"{c.direct_servers} more, but PostgreSQL allows {c.server_slots} "
                f"(max_connections {c.max_connections} - "
                f"superuser_reserved_connections {c.superuser_reserved_connections})",
            )
        )
    return problems
