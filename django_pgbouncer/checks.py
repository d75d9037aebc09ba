"""System checks: what breaks behind PgBouncer in transaction mode, caught before it
reaches production. Each message says what goes wrong; each hint, what to change.

The checks are pure functions of settings (`config_problems`, `migration_problems`,
`capacity_problems`), tested with tables of cases, wrapped by thin registered checks
that read `conf` and ask the servers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import alias_options, app_settings, direct_alias, pooled_aliases
from .errors import ConfigError, ConsoleUnavailable, redact
from .observe import console_connect
from .render import version_parse

__all__ = [
    "CAPACITY_HINTS",
    "DIRECT_CONNECTIONS",
    "Capacity",
    "capacity_problems",
    "config_problems",
    "keeps_connections",
    "migration_problems",
]

Databases = Mapping[str, Mapping[str, Any]]


# A direct alias of direct_database_config() keeps no connection (CONN_MAX_AGE=0):
# it holds one only while a migration, a management command, or a request's
# explicit session work (LISTEN, a session advisory lock, a big iterator) runs.
# Counted as this many at once per alias: a migrate, a shell and one more. A
# direct alias that keeps its connections counts one per web thread instead.
DIRECT_CONNECTIONS = 3


@dataclass(frozen=True)
class Capacity:
    """What the web tier opens, and what PgBouncer and PostgreSQL allow.

    The one formula of the connection budget: the checks E007 and E008 and
    docs/capacity.md's model both use it."""

    processes: int  # web server worker processes, over every web node
    threads: int  # threads per process; each holds one connection per alias
    pooled_aliases: int  # aliases that go through PgBouncer
    direct_aliases: int  # aliases to PostgreSQL itself that keep no connection
    max_client_conn: int  # PgBouncer
    default_pool_size: int  # PgBouncer, per database/user pair
    reserve_pool_size: int  # PgBouncer
    pools: int  # database/user pairs PgBouncer serves
    max_db_connections: int  # PgBouncer, 0 = unlimited
    max_connections: int  # PostgreSQL
    superuser_reserved_connections: int  # PostgreSQL
    kept_direct_aliases: int = 0  # direct aliases with CONN_MAX_AGE != 0
    # PgBouncer processes on one port (so_reuseport): each takes max_client_conn
    # clients and keeps pools of its own.
    pgbouncer_processes: int = 1

    @property
    def clients(self) -> int:
        """PgBouncer's client connections: one per thread and pooled alias."""
        return self.processes * self.threads * self.pooled_aliases

    @property
    def pool_servers(self) -> int:
        """The most server connections PgBouncer opens, however big the tier."""
        if not self.pooled_aliases:
            return 0
        per_pool = self.default_pool_size + self.reserve_pool_size
        if self.max_db_connections:
            per_pool = min(per_pool, self.max_db_connections)
        return self.pgbouncer_processes * self.pools * per_pool

    @property
    def direct_servers(self) -> int:
        kept = self.processes * self.threads * self.kept_direct_aliases
        return kept + DIRECT_CONNECTIONS * self.direct_aliases

    @property
    def backends(self) -> int:
        """The most PostgreSQL backends the site may hold."""
        return self.pool_servers + self.direct_servers

    @property
    def server_slots(self) -> int:
        return self.max_connections - self.superuser_reserved_connections


def keeps_connections(entry: Mapping[str, Any]) -> bool:
    """Whether a direct alias holds its connections past a request: CONN_MAX_AGE
    other than 0 (None keeps them for ever), or Django's pool (OPTIONS["pool"]),
    which holds up to its max_size per process; both count one per thread."""
    options = entry.get("OPTIONS") or {}
    return entry.get("CONN_MAX_AGE", 0) != 0 or bool(options.get("pool"))


def _direct_text(c: Capacity) -> str:
    parts = []
    if c.direct_aliases:
        parts.append(
            f"{c.direct_aliases} direct alias(es) x {DIRECT_CONNECTIONS} (held only "
            "while a migration or session work runs)"
        )
    if c.kept_direct_aliases:
        parts.append(
            f"{c.processes} processes x {c.threads} threads x "
            f"{c.kept_direct_aliases} direct alias(es) that keep connections "
            "(CONN_MAX_AGE != 0)"
        )
    return " + ".join(parts) or "no direct alias"


def capacity_problems(c: Capacity) -> list[tuple[str, str]]:
    """(check id, message) for every limit the configuration can exceed."""
    problems = []
    if c.clients > c.max_client_conn * c.pgbouncer_processes:
        problems.append(
            (
                "django_pgbouncer.E007",
                f"{c.processes} processes x {c.threads} threads x {c.pooled_aliases} "
                f"pooled aliases can hold {c.clients} client connections, but "
                f"{c.pgbouncer_processes} PgBouncer process(es) of max_client_conn "
                f"{c.max_client_conn} take {c.max_client_conn * c.pgbouncer_processes}"
                ": the rest are refused with 'no more connections allowed "
                "(max_client_conn)'",
            )
        )
    if c.backends > c.server_slots:
        problems.append(
            (
                "django_pgbouncer.E008",
                f"PgBouncer may open {c.pool_servers} server connections "
                f"({c.pgbouncer_processes} process(es) x {c.pools} pools x "
                f"(default_pool_size {c.default_pool_size} + "
                f"reserve_pool_size {c.reserve_pool_size})) and the direct side "
                f"{c.direct_servers} more ({_direct_text(c)}), but PostgreSQL "
                f"allows {c.server_slots} (max_connections {c.max_connections} - "
                f"superuser_reserved_connections {c.superuser_reserved_connections})",
            )
        )
    return problems


def _prepared_statements_on(options: Mapping[str, Any]) -> bool:
    # psycopg prepares a statement after `prepare_threshold` runs (default 5), but
    # only on server-side binding cursors; Django uses client-side ones by default.
    return bool(options.get("server_side_binding")) and (
        options.get("prepare_threshold", 5) is not None
    )


Entry = Mapping[str, Any]


def _server_side_cursors(alias: str, entry: Entry, asgi: bool) -> CheckMessage | None:
    if entry.get("DISABLE_SERVER_SIDE_CURSORS"):
        return None
    return Error(
        f"Database alias {alias!r} goes through PgBouncer in transaction "
        "mode with server-side cursors enabled: QuerySet.iterator() fails "
        "with 'cursor \"_django_curs_...\" does not exist' when its next "
        "FETCH lands on another server connection.",
        hint=f"Set DATABASES[{alias!r}]['DISABLE_SERVER_SIDE_CURSORS'] = "
        "True (django_pgbouncer.database_config does), and iterate big "
        "tables over the 'direct' alias.",
        id="django_pgbouncer.E001",
    )


def _prepared_statements(alias: str, entry: Entry, asgi: bool) -> CheckMessage | None:
    version = alias_options(entry, alias=alias).version
    if not _prepared_statements_on(entry.get("OPTIONS") or {}) or (
        version is not None and version_parse(version) >= (1, 21)
    ):
        return None
    return Error(
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


def _assume_role(alias: str, entry: Entry, asgi: bool) -> CheckMessage | None:
    if not (entry.get("OPTIONS") or {}).get("assume_role"):
        return None
    return Error(
        f"Database alias {alias!r} uses OPTIONS['assume_role'] through "
        "PgBouncer in transaction mode: Django's SET ROLE stays on a "
        "pooled server connection and other clients' queries run with "
        "that role.",
        hint="Log in as the role itself: a separate USER in DATABASES.",
        id="django_pgbouncer.E003",
    )


def _kept_under_asgi(alias: str, entry: Entry, asgi: bool) -> CheckMessage | None:
    if not asgi or (entry.get("CONN_MAX_AGE") or 0) == 0:
        return None
    return Warning(
        f"Database alias {alias!r} keeps connections (CONN_MAX_AGE="
        f"{entry.get('CONN_MAX_AGE')}) under ASGI, where each request may "
        "run in a new thread: connections pile up until PgBouncer answers "
        "'no more connections allowed (max_client_conn)'.",
        hint=f"Set DATABASES[{alias!r}]['CONN_MAX_AGE'] = 0 under ASGI; "
        "PgBouncer makes connecting cheap.",
        id="django_pgbouncer.W004",
    )


def _two_pools(alias: str, entry: Entry, asgi: bool) -> CheckMessage | None:
    if not (entry.get("OPTIONS") or {}).get("pool"):
        return None
    return Error(
        f"Database alias {alias!r} stacks Django's connection pool "
        "(OPTIONS['pool']) on PgBouncer: two pools, each process holding "
        "server-side slots it does not use, and no gain.",
        hint=f"Remove DATABASES[{alias!r}]['OPTIONS']['pool']; keep "
        "CONN_MAX_AGE for persistent connections to PgBouncer.",
        id="django_pgbouncer.E005",
    )


# Checks of each transaction-pooled alias, then of each alias behind PgBouncer in
# any mode.
_TRANSACTION_POOLED_CHECKS = (
    _server_side_cursors,
    _prepared_statements,
    _assume_role,
    _kept_under_asgi,
)
_POOLED_CHECKS = (_two_pools,)


def config_problems(databases: Databases, *, asgi: bool) -> list[CheckMessage]:
    """The checks that need no server: settings in, messages out."""
    found = [
        check(alias, entry, asgi)
        for alias, entry in pooled_aliases(databases).items()
        for check in _TRANSACTION_POOLED_CHECKS
    ]
    found += [
        check(alias, entry, asgi)
        for alias, entry in databases.items()
        if alias_options(entry, alias=alias).pool_mode
        for check in _POOLED_CHECKS
    ]
    return [message for message in found if message is not None]


def migration_problems(
    databases: Databases, needs_session: Iterable[str]
) -> list[CheckMessage]:
    """Migrations through the pooler: a warning, or an error when one needs a session.

    `needs_session`: labels of migrations that cannot run in a transaction
    (atomic=False, or CREATE/DROP INDEX CONCURRENTLY).
    """
    if "default" not in pooled_aliases(databases) or direct_alias(databases, "default"):
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
    conf = app_settings()
    return config_problems(conf.databases, asgi=conf.asgi) + migration_problems(
        conf.databases, _migrations_needing_session()
    )


@dataclass(frozen=True)
class _Limits:
    """What the capacity check asks of PgBouncer and PostgreSQL."""

    pgbouncer: dict[str, str]  # SHOW CONFIG
    pools: int  # the most a process has
    processes: int
    max_connections: int
    superuser_reserved_connections: int


def _limits_ask(admin_urls: Sequence[str], alias: str, names: set[str]) -> _Limits:
    """Each PgBouncer process's console (one render: the first's CONFIG)."""
    from django.db import connections

    pools, config = 0, dict[str, str]()
    for url in admin_urls:
        with console_connect(url) as console:
            config = config or {i.key: str(i.value) for i in console.show("CONFIG")}
            # The pools of the aliases' own databases: the `*` fallback also keeps
            # pools for others (test databases, psql to postgres) for an hour.
            mine = sum(1 for p in console.show("POOLS") if p.database in names)
            pools = max(pools, mine)
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int"
        )
        max_connections, reserved = cursor.fetchone()
    return _Limits(config, pools or 1, len(admin_urls), max_connections, reserved)


# E008 does not depend on the web tier's size (PgBouncer queues its clients), so
# its hint names only what bounds PostgreSQL's side.
CAPACITY_HINTS = {
    "django_pgbouncer.E007": "Raise PgBouncer's max_client_conn (MAX_CLIENT_CONN; "
    "each client costs PgBouncer one file descriptor), or run fewer web processes "
    "or threads (WEB_CONCURRENCY, GUNICORN_THREADS; PGBOUNCER_WEB_CAPACITY tells "
    "this check how many).",
    "django_pgbouncer.E008": "Lower PgBouncer's pools (DEFAULT_POOL_SIZE, "
    "RESERVE_POOL_SIZE), cap each with MAX_DB_CONNECTIONS, or raise PostgreSQL's "
    "max_connections; set CONN_MAX_AGE=0 on a direct alias that keeps "
    "connections (direct_database_config() does).",
}


@register(Tags.database)
def capacity_check(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[CheckMessage]:
    """`manage.py check --database default`: ask both servers for their limits."""
    conf = app_settings()
    databases = kwargs.get("databases")
    pooled = pooled_aliases(conf.databases)
    consoles = conf.admin_urls or ((conf.admin_url,) if conf.admin_url else ())
    if not databases or not consoles or not set(databases) & set(pooled):
        return []
    alias = next(a for a in databases if a in pooled)
    names = {str(entry.get("NAME")) for entry in pooled.values()}
    try:
        limits = _limits_ask(consoles, alias, names)
    except (
        ConsoleUnavailable,
        ConfigError,
        psycopg.Error,
        KeyError,
        ValueError,
    ) as error:
        reason = redact(" ".join(str(error).split()))
        return [
            Warning(
                f"The connection budget could not be checked: {reason}",
                hint="Check that PgBouncer and PostgreSQL are up, and that "
                "PGBOUNCER_ADMIN_URL names a user in PgBouncer's stats_users.",
                id="django_pgbouncer.W009",
            )
        ]
    direct = [e for a, e in conf.databases.items() if a not in pooled]
    kept = sum(1 for entry in direct if keeps_connections(entry))
    capacity = Capacity(
        processes=conf.web_capacity.processes,
        threads=conf.web_capacity.threads,
        pooled_aliases=len(pooled),
        direct_aliases=len(direct) - kept,
        kept_direct_aliases=kept,
        max_client_conn=int(limits.pgbouncer["max_client_conn"]),
        default_pool_size=int(limits.pgbouncer["default_pool_size"]),
        reserve_pool_size=int(limits.pgbouncer["reserve_pool_size"]),
        pools=limits.pools,
        pgbouncer_processes=limits.processes,
        max_db_connections=int(limits.pgbouncer["max_db_connections"]),
        max_connections=limits.max_connections,
        superuser_reserved_connections=limits.superuser_reserved_connections,
    )
    return [
        Error(message, hint=CAPACITY_HINTS[check_id], id=check_id)
        for check_id, message in capacity_problems(capacity)
    ]
