"""System checks: what breaks behind PgBouncer in transaction mode, caught before it
reaches production. Each message says what goes wrong; each hint, what to change."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .capacity import Capacity, capacity_problems
from .pgbouncer_ini import version_parse

__all__: list[str] = []

TRANSACTION_MODES = ("transaction", "statement")


def _pooled(databases: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The aliases that go through PgBouncer in transaction or statement mode."""
    return {
        alias: entry
        for alias, entry in databases.items()
        if (entry.get("PGBOUNCER") or {}).get("pool_mode") in TRANSACTION_MODES
    }


def _has_direct_twin(databases: dict[str, dict[str, Any]], alias: str) -> bool:
    return any(
        (e.get("PGBOUNCER") or {}).get("direct_for") == alias
        for e in databases.values()
    )


def _prepared_statements_on(options: dict[str, Any]) -> bool:
    # psycopg prepares a statement after `prepare_threshold` runs (default 5), but
    # only on server-side binding cursors; Django uses client-side ones by default.
    return bool(options.get("server_side_binding")) and (
        options.get("prepare_threshold", 5) is not None
    )


def config_problems(
    databases: dict[str, dict[str, Any]], *, asgi: bool
) -> list[CheckMessage]:
    """The checks that need no server: settings in, messages out."""
    found: list[CheckMessage] = []
    for alias, entry in _pooled(databases).items():
        options = entry.get("OPTIONS") or {}
        version = (entry.get("PGBOUNCER") or {}).get("version")
        if not entry.get("DISABLE_SERVER_SIDE_CURSORS"):
            found.append(
                Error(
                    f"Database alias {alias!r} goes through PgBouncer in transaction "
                    "mode with server-side cursors enabled: QuerySet.iterator() fails "
                    "with 'cursor \"_django_curs_...\" does not exist' when its next "
                    "FETCH lands on another server connection.",
                    hint=f"Set DATABASES[{alias!r}]['DISABLE_SERVER_SIDE_CURSORS'] = "
                    "True (django_pgbouncer.database_config does), and iterate big "
                    "tables over the 'direct' alias.",
                    id="django_pgbouncer.E001",
                )
            )
        if _prepared_statements_on(options) and (
            version is None or version_parse(version) < (1, 21)
        ):
            found.append(
                Error(
                    f"Database alias {alias!r} prepares statements "
                    "(server_side_binding with a prepare_threshold), and the "
                    "PgBouncer behind it "
                    f"({version or 'version unknown'}) cannot carry them between "
                    "clients: 'prepared statement \"_pg3_0\" does not exist'.",
                    hint=f"Set DATABASES[{alias!r}]['OPTIONS']['prepare_threshold'] = "
                    "None or drop server_side_binding; with PgBouncer 1.21+ and "
                    "max_prepared_statements > 0, pass pgbouncer_version to "
                    "database_config().",
                    id="django_pgbouncer.E002",
                )
            )
        if options.get("assume_role"):
            found.append(
                Error(
                    f"Database alias {alias!r} uses OPTIONS['assume_role'] through "
                    "PgBouncer in transaction mode: Django's SET ROLE stays on a "
                    "pooled server connection and other clients' queries run with "
                    "that role.",
                    hint="Log in as the role itself: a separate USER in DATABASES.",
                    id="django_pgbouncer.E003",
                )
            )
        if asgi and (entry.get("CONN_MAX_AGE") or 0) != 0:
            found.append(
                Warning(
                    f"Database alias {alias!r} keeps connections (CONN_MAX_AGE="
                    f"{entry.get('CONN_MAX_AGE')}) under ASGI, where each request may "
                    "run in a new thread: connections pile up until PgBouncer answers "
                    "'no more connections allowed (max_client_conn)'.",
                    hint=f"Set DATABASES[{alias!r}]['CONN_MAX_AGE'] = 0 under ASGI; "
                    "PgBouncer makes connecting cheap.",
                    id="django_pgbouncer.W004",
                )
            )
    for alias, entry in databases.items():
        if entry.get("PGBOUNCER", {}).get("pool_mode") and (
            entry.get("OPTIONS") or {}
        ).get("pool"):
            found.append(
                Error(
                    f"Database alias {alias!r} stacks Django's connection pool "
                    "(OPTIONS['pool']) on PgBouncer: two pools, each process holding "
                    "server-side slots it does not use, and no gain.",
                    hint=f"Remove DATABASES[{alias!r}]['OPTIONS']['pool']; keep "
                    "CONN_MAX_AGE for persistent connections to PgBouncer.",
                    id="django_pgbouncer.E005",
                )
            )
    return found


def migration_problems(
    databases: dict[str, dict[str, Any]], needs_session: Iterable[str]
) -> list[CheckMessage]:
    """Migrations through the pooler: a warning, or an error when one needs a session.

    `needs_session`: labels of migrations that cannot run in a transaction
    (atomic=False, or CREATE/DROP INDEX CONCURRENTLY).
    """
    if "default" not in _pooled(databases) or _has_direct_twin(databases, "default"):
        return []
    needing = sorted(needs_session)
    if needing:
        return [
            Error(
                "Migrations run through PgBouncer in transaction mode, and "
                f"{', '.join(needing)} cannot run inside a transaction: each of its "
                "statements may land on another server connection.",
                hint="Set DIRECT_DATABASE_URL (direct_database_config()); migrate then "
                "runs over it.",
                id="django_pgbouncer.E006",
            )
        ]
    return [
        Warning(
            "Migrations run through PgBouncer in transaction mode: SET lock_timeout "
            "and other session settings a migration makes land on a random server "
            "connection.",
            hint="Set DIRECT_DATABASE_URL (direct_database_config()); migrate then "
            "runs over it.",
            id="django_pgbouncer.W006",
        )
    ]


def _migrations_needing_session() -> list[str]:
    from django.db.migrations.loader import MigrationLoader

    concurrent = ("AddIndexConcurrently", "RemoveIndexConcurrently")
    loader = MigrationLoader(None, ignore_no_migrations=True, load=False)
    loader.load_disk()
    return [
        f"{app}.{name}"
        for (app, name), migration in loader.disk_migrations.items()
        if not migration.atomic
        or any(type(op).__name__ in concurrent for op in migration.operations)
    ]


@register(Tags.compatibility)
def pooling_config_check(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[CheckMessage]:
    asgi = bool(getattr(settings, "ASGI_APPLICATION", None)) and not getattr(
        settings, "WSGI_APPLICATION", None
    )
    return config_problems(settings.DATABASES, asgi=asgi) + migration_problems(
        settings.DATABASES, _migrations_needing_session()
    )


def _console_config(admin_url: str) -> dict[str, str]:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        cur = conn.execute("SHOW CONFIG", prepare=False)
        rows = {row[0]: str(row[1]) for row in cur.fetchall()}
        pools = conn.execute("SHOW POOLS", prepare=False).fetchall()
    rows["_pools"] = str(sum(1 for row in pools if row[0] != "pgbouncer") or 1)
    return rows


_CAPACITY_HINTS = {
    "django_pgbouncer.E007": "Run fewer web processes or threads "
    "(PGBOUNCER_WEB_CAPACITY tells this check how many), or raise PgBouncer's "
    "max_client_conn.",
    "django_pgbouncer.E008": "Lower PgBouncer's default_pool_size or "
    "reserve_pool_size, cap it with max_db_connections, or raise PostgreSQL's "
    "max_connections.",
}


@register(Tags.database)
def capacity_check(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[CheckMessage]:
    """`manage.py check --database default`: ask both servers for their limits."""
    databases = kwargs.get("databases")
    admin_url = getattr(settings, "PGBOUNCER_ADMIN_URL", "")
    pooled = _pooled(settings.DATABASES)
    if not databases or not admin_url or not set(databases) & set(pooled):
        return []
    from django.db import connections

    web = getattr(settings, "PGBOUNCER_WEB_CAPACITY", {"processes": 1, "threads": 1})
    config = _console_config(admin_url)
    alias = next(a for a in databases if a in pooled)
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int"
        )
        max_connections, reserved = cursor.fetchone()
    capacity = Capacity(
        processes=web["processes"],
        threads=web["threads"],
        pooled_aliases=len(pooled),
        direct_aliases=len(settings.DATABASES) - len(pooled),
        max_client_conn=int(config["max_client_conn"]),
        default_pool_size=int(config["default_pool_size"]),
        reserve_pool_size=int(config["reserve_pool_size"]),
        pools=int(config["_pools"]),
        max_db_connections=int(config["max_db_connections"]),
        max_connections=max_connections,
        superuser_reserved_connections=reserved,
    )
    return [
        Error(
            message,
            hint="Lower WEB_CONCURRENCY or GUNICORN_THREADS, or raise "
            "MAX_CLIENT_CONN / max_connections, or lower DEFAULT_POOL_SIZE.",
            id=check_id,
        )
        for check_id, message in capacity_problems(capacity)
    ]
