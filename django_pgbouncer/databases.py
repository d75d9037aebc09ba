"""`DATABASES` entries for a pooled alias and its direct twin.

Pure functions: environment values in, a dict for `settings.DATABASES` out.
"""

from __future__ import annotations

from typing import Any

import dj_database_url

from .dburl import postgres_url_parse
from .errors import ConfigError

__all__ = [
    "DIRECT_ALIAS",
    "GUARD_MODES",
    "POOL_MODES",
    "database_config",
    "direct_database_config",
    "guard_mode_parse",
    "migration_alias",
    "pool_mode_parse",
]

POOL_MODES = ("session", "transaction", "statement")
GUARD_MODES = ("raise", "log", "off")
DIRECT_ALIAS = "direct"

# Persistent connections from each gunicorn thread to PgBouncer. Reconnecting per
# request costs a full SCRAM exchange (PgBouncer 1.18 has no fast ad-hoc SCRAM):
# bench/conn_lifetime.py measured the list page at 314 req/s with CONN_MAX_AGE=0 and
# 661 with 600 (medians of 3 interleaved rounds, README "Measured"). An idle client
# connection costs PgBouncer about 2 kB and no PostgreSQL backend.
DEFAULT_CONN_MAX_AGE = 600
# Django's health check is a `SELECT 1` round trip before each request; with the
# harness's interleaved rounds it cost the list page a fifth of its throughput
# (bench/results/explore-queries.md: 586 req/s with it, 716 without). Behind PgBouncer
# only PgBouncer can close a kept connection, and django_pgbouncer.stale notices that
# with a select() on the socket instead, for about a microsecond.
DEFAULT_CONN_HEALTH_CHECKS = False


def pool_mode_parse(value: str, *, variable: str = "POOL_MODE") -> str:
    """Validate a PgBouncer pool mode name."""
    mode = value.strip().lower()
    if mode not in POOL_MODES:
        raise ConfigError(
            variable,
            f"{value!r} is not a pool mode",
            f"set it to one of {', '.join(POOL_MODES)} (transaction is the default)",
        )
    return mode


def guard_mode_parse(value: str, *, variable: str = "PGBOUNCER_GUARD") -> str:
    """Validate a mode of the runtime guard (django_pgbouncer.guard)."""
    mode = value.strip().lower()
    if mode not in GUARD_MODES:
        raise ConfigError(
            variable,
            f"{value!r} is not a guard mode",
            f"set it to one of {', '.join(GUARD_MODES)}",
        )
    return mode


def database_config(
    *,
    url: str,
    pool_mode: str = "transaction",
    conn_max_age: int | None = DEFAULT_CONN_MAX_AGE,
    conn_health_checks: bool = DEFAULT_CONN_HEALTH_CHECKS,
    guard: str = "raise",
    pgbouncer_version: str | None = None,
    variable: str = "DATABASE_URL",
) -> dict[str, Any]:
    """The entry for an alias that reaches PostgreSQL through PgBouncer.

    `guard`: what the runtime guard does with session-state SQL on this alias
    (raise, log, off). `pgbouncer_version`: the PgBouncer behind the URL, when known
    (the checks then know whether it can carry prepared statements).
    """
    postgres_url_parse(url, variable=variable)
    mode = pool_mode_parse(pool_mode)
    config: dict[str, Any] = dict(
        dj_database_url.parse(
            url, conn_max_age=conn_max_age, conn_health_checks=conn_health_checks
        )
    )
    options = config.setdefault("OPTIONS", {})
    if mode != "session":
        # A transaction may run on another server connection than the one before
        # it: a server-side cursor opened outside a transaction would be gone.
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
        # PgBouncer before 1.21 cannot carry prepared statements between clients.
        options["prepare_threshold"] = None
        options.pop("server_side_binding", None)
    config["PGBOUNCER"] = {"pool_mode": mode, "guard": guard_mode_parse(guard)}
    if pgbouncer_version:
        config["PGBOUNCER"]["version"] = pgbouncer_version
    return config


def direct_database_config(
    *, url: str, pooled_alias: str = "default", variable: str = "DIRECT_DATABASE_URL"
) -> dict[str, Any]:
    """The entry for an alias that talks to PostgreSQL itself, with a real session.

    Migrations run here; so does anything that needs session state (LISTEN, session
    advisory locks, server-side cursors). Connections are not kept: this alias serves
    rare work, and every one of them costs a PostgreSQL backend.
    """
    postgres_url_parse(url, variable=variable)
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=0))
    config["PGBOUNCER"] = {"direct_for": pooled_alias}
    # Under test the direct alias is the pooled one's database, not a second copy.
    config["TEST"] = {"MIRROR": pooled_alias}
    return config


def migration_alias(databases: dict[str, dict[str, Any]], alias: str) -> str:
    """The alias that migrations for `alias` should run over: its direct twin if any."""
    for name, entry in databases.items():
        if (entry.get("PGBOUNCER") or {}).get("direct_for") == alias:
            return name
    return alias
