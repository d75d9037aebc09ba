"""pgbench -S (select-only) straight to PostgreSQL and through PgBouncer, with and
without a new connection per transaction (-C): what the pooler itself costs and
saves, with no Django in the way."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from devstack.stack import APP_USER, Stack

# A database of its own: the site's tables stay as the seed left them.
PGBENCH_DB = "bench_pgbench"
CLIENTS, THREADS = 16, 2


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    latency_ms: float | None
    # pgbench 15+ counts failed transactions apart (and leaves them out of tps).
    failed: int = 0


def pgbench_parse(out: str) -> PgbenchResult:
    """The numbers in pgbench's report. Before pgbench 14 it printed two tps
    lines, with and without connection time: the first, with it, is taken."""
    tps = re.search(r"^tps = (\d+(?:\.\d+)?) ", out, re.MULTILINE)
    if not tps:
        raise ValueError(f"pgbench printed no tps:\n{out}")
    latency = re.search(r"^latency average = (\d+(?:\.\d+)?) ms$", out, re.MULTILINE)
    failed = re.search(r"^number of failed transactions: (\d+) ", out, re.MULTILINE)
    return PgbenchResult(
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)) if latency else None,
        failed=int(failed.group(1)) if failed else 0,
    )


def pgbench_env(
    *, host: str, port: int, user: str, password: str, db: str
) -> dict[str, str]:
    """libpq's variables: the password stays out of the process list."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PGHOST": host,
        "PGPORT": str(port),
        "PGUSER": user,
        "PGPASSWORD": password,
        "PGDATABASE": db,
    }


def pgbench_run(
    pgbench: Path, env: Mapping[str, str], args: Sequence[str], *, seconds: int
) -> str:
    result = subprocess.run(
        [str(pgbench), *args],
        capture_output=True,
        text=True,
        check=False,
        env=dict(env),
        timeout=seconds + 120,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"pgbench {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return result.stdout


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
    direct, bouncer = stack.settings.postgres_port, stack.settings.pgbouncer_port
    ways: dict[str, tuple[int, list[str]]] = {
        "direct": (direct, []),
        "through PgBouncer": (bouncer, []),
        "direct, -C (a connection per transaction)": (direct, ["-C"]),
        "through PgBouncer, -C": (bouncer, ["-C"]),
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
            results[name].append(
                {
                    "tps": parsed.tps,
                    "latency_ms": parsed.latency_ms,
                    "failed": parsed.failed,
                }
            )
    return results
