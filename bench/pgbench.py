"""pgbench -S (select-only) straight to PostgreSQL and through PgBouncer, with and
without a new connection per transaction (-C): what the pooler itself costs and
saves, with no Django in the way."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from devstack.stack import APP_USER, Stack

from .measure import pgbench_env, pgbench_parse, pgbench_run

# A database of its own: the site's tables stay as the seed left them.
PGBENCH_DB = "bench_pgbench"
CLIENTS, THREADS = 16, 2


def pgbench_prepare(stack: Stack) -> None:
    """A scale-1 dataset, made once as the superuser over the direct URL; the
    site's role may read it (it is the role that goes through PgBouncer)."""
    superuser = stack.postgres.config.superuser_url()
    with psycopg.connect(superuser.url(), autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [PGBENCH_DB]
        ).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(PGBENCH_DB), sql.Identifier(APP_USER)
                )
            )
    env = pgbench_env(
        host=superuser.host,
        port=superuser.port,
        user=superuser.user,
        password=superuser.password,
        db=PGBENCH_DB,
    )
    pgbench_run(
        stack.postgres.bindir / "pgbench", env, ["-i", "-s", "1", "-q"], seconds=60
    )
    with psycopg.connect(superuser.with_(name=PGBENCH_DB).url(), autocommit=True) as c:
        c.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
                sql.Identifier(APP_USER)
            )
        )


def pgbench_rounds(
    stack: Stack, *, rounds: int, seconds: int
) -> dict[str, list[dict[str, Any]]]:
    """The four ways, interleaved in rounds, as the site's role."""
    ways = {
        "direct": (stack.settings.postgres_port, []),
        "through PgBouncer": (stack.settings.pgbouncer_port, []),
        "direct, -C (a connection per transaction)": (
            stack.settings.postgres_port,
            ["-C"],
        ),
        "through PgBouncer, -C": (stack.settings.pgbouncer_port, ["-C"]),
    }
    app = stack.direct_url
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, (port, extra) in ways.items():
            env = pgbench_env(
                host=app.host, port=port, user=app.user, password=app.password,
                db=PGBENCH_DB,
            )  # fmt: skip
            # -n: the site's role may not vacuum the superuser's tables.
            args = ["-S", "-n", f"-c{CLIENTS}", f"-j{THREADS}", f"-T{seconds}", *extra]
            out = pgbench_run(
                stack.postgres.bindir / "pgbench", env, args, seconds=seconds
            )
            parsed = pgbench_parse(out)
            results[name].append({"tps": parsed.tps, "latency_ms": parsed.latency_ms})
    return results
