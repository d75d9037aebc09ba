"""The app's settings contract: the one module that reads Django settings or an
alias's `PGBOUNCER` options. Every other module asks here.

Django settings read (all optional):

===========================  ====================  =====================================
setting                      type                  default, and meaning
===========================  ====================  =====================================
``DATABASES``                Django's              each alias's ``PGBOUNCER`` options
                                                   (below) say how it reaches PostgreSQL
``PGBOUNCER_ADMIN_URL``      str (a URL)           ``""``: PgBouncer's admin console,
                                                   ``postgres://USER:PW@HOST:PORT/
                                                   pgbouncer``, USER in ``stats_users``;
                                                   unset, the dashboard, ``/metrics``
                                                   and the capacity check cannot see
                                                   the pool
``PGBOUNCER_ADMIN_URLS``     str or list           ``()``: each PgBouncer process's own
                                                   console when several share a port
                                                   (so_reuseport), separated by
                                                   spaces; the dashboard, ``/metrics``
                                                   and ``/readyz`` sum over them and
                                                   show each one
``PGBOUNCER_WEB_CAPACITY``   dict                  ``{"processes": 1, "threads": 1}``:
                                                   the web tier's size, for the
                                                   connection budget check
``METRICS_TOKEN``            str                   ``""``: ``/metrics`` wants
                                                   ``Authorization: Bearer <token>``;
                                                   unset, local callers only
``ASGI_APPLICATION``,        Django's              served under ASGI when only
``WSGI_APPLICATION``                               ``ASGI_APPLICATION`` is set
``SECURE_PROXY_SSL_HEADER``  Django's              set: a reverse proxy is declared in
                                                   front of the site, so no caller
                                                   counts as local (``/metrics`` and
                                                   the ``/readyz`` detail want the
                                                   token)
``PGBOUNCER_ROUTING``        dict                  ``{}``: no replicas. Read by
                                                   ``django_pgbouncer.routing``; keys
                                                   and defaults in
                                                   ``RoutingSettings`` below
===========================  ====================  =====================================

``DATABASES[alias]["PGBOUNCER"]`` (``database_config()`` and
``direct_database_config()`` write it; a hand-written one is validated alike):

==============  ==========================  ==========================================
key             type                        default, and meaning
==============  ==========================  ==========================================
``pool_mode``   ``PoolMode`` or str          absent: the alias does not go through
                                            PgBouncer. ``transaction`` and
                                            ``statement`` turn on the guard, the
                                            stale-connection check and the checks
``guard``       ``GuardMode`` or str         ``raise``: what the runtime guard does
                                            with session-state SQL (raise, log, off)
``version``     str or None                 ``None`` (unknown): the PgBouncer behind
                                            the alias, e.g. ``"1.18"``
``direct_for``  str or None                 ``None``: on a direct alias, the pooled
                                            alias it is the session path of
                                            (migrations run over it)
==============  ==========================  ==========================================
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .errors import ConfigError

__all__ = [
    "AliasOptions",
    "AppSettings",
    "GuardMode",
    "PoolMode",
    "RoutingSettings",
    "WebCapacity",
    "alias_conninfo",
    "alias_options",
    "alias_options_set",
    "app_settings",
    "direct_alias",
    "pooled_aliases",
    "routing_settings",
    "settings_all",
]

_SETTINGS = (
    "DATABASES",
    "PGBOUNCER_ADMIN_URLS",
    "PGBOUNCER_ADMIN_URL",
    "PGBOUNCER_WEB_CAPACITY",
    "METRICS_TOKEN",
    "ASGI_APPLICATION",
    "WSGI_APPLICATION",
    "SECURE_PROXY_SSL_HEADER",
    "PGBOUNCER_ROUTING",
)


E = TypeVar("E", bound=StrEnum)


class PoolMode(StrEnum):
    """PgBouncer's `pool_mode`: when a server connection goes back to the pool."""

    SESSION = "session"
    TRANSACTION = "transaction"
    STATEMENT = "statement"

    @property
    def shares_sessions(self) -> bool:
        """Consecutive transactions of one client may run on different servers."""
        return self is not PoolMode.SESSION


class GuardMode(StrEnum):
    """What the runtime guard does with SQL that leaves session state."""

    RAISE = "raise"
    LOG = "log"
    OFF = "off"


def _enum_parse(kind: type[E], value: object, where: str) -> E:
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        names = ", ".join(m.value for m in kind)
        raise ConfigError(
            where, f"{value!r} is not one of {names}", f"set it to one of {names}"
        ) from None


@dataclass(frozen=True)
class AliasOptions:
    """An alias's `PGBOUNCER` options, validated (see the table above)."""

    pool_mode: PoolMode | None = None
    guard: GuardMode = GuardMode.RAISE
    version: str | None = None
    direct_for: str | None = None

    @property
    def transaction_pooled(self) -> bool:
        """Through PgBouncer in transaction or statement mode."""
        return self.pool_mode is not None and self.pool_mode.shares_sessions


def alias_options(entry: Mapping[str, Any], *, alias: str = "?") -> AliasOptions:
    """The `PGBOUNCER` options of one `DATABASES` entry."""
    raw = entry.get("PGBOUNCER") or {}
    where = f"DATABASES[{alias!r}]['PGBOUNCER']"
    mode = raw.get("pool_mode")
    return AliasOptions(
        pool_mode=None
        if mode is None
        else _enum_parse(PoolMode, mode, f"{where}['pool_mode']"),
        guard=_enum_parse(GuardMode, raw.get("guard", "raise"), f"{where}['guard']"),
        version=str(raw["version"]) if raw.get("version") else None,
        direct_for=raw.get("direct_for") or None,
    )


def alias_options_set(entry: dict[str, Any], options: AliasOptions) -> None:
    """Write `options` into a `DATABASES` entry, as `alias_options()` reads them."""
    raw: dict[str, Any] = {}
    if options.pool_mode is not None:
        raw["pool_mode"] = options.pool_mode
        raw["guard"] = options.guard
    if options.version:
        raw["version"] = options.version
    if options.direct_for:
        raw["direct_for"] = options.direct_for
    entry["PGBOUNCER"] = raw


def pooled_aliases(
    databases: Mapping[str, Mapping[str, Any]],
) -> dict[str, Mapping[str, Any]]:
    """The aliases that go through PgBouncer in transaction or statement mode."""
    return {
        alias: entry
        for alias, entry in databases.items()
        if alias_options(entry, alias=alias).transaction_pooled
    }


def direct_alias(databases: Mapping[str, Mapping[str, Any]], alias: str) -> str | None:
    """The alias that talks to PostgreSQL itself on behalf of `alias`, if any."""
    for name, entry in databases.items():
        if alias_options(entry, alias=name).direct_for == alias:
            return name
    return None


@dataclass(frozen=True)
class WebCapacity:
    """How many connections per alias the web tier can hold at once."""

    processes: int = 1
    threads: int = 1


@dataclass(frozen=True)
class AppSettings:
    """The project-wide settings the app reads (see the table above)."""

    databases: Mapping[str, Mapping[str, Any]]
    admin_url: str | None
    web_capacity: WebCapacity
    metrics_token: str
    asgi: bool
    behind_proxy: bool = False
    # Each PgBouncer process's console when several share a port; () for one.
    admin_urls: tuple[str, ...] = ()


def _web_capacity(value: object) -> WebCapacity:
    fix = 'set it to {"processes": N, "threads": N}, each a whole number of at least 1'
    if value is None:
        return WebCapacity()
    if not isinstance(value, Mapping) or set(value) - {"processes", "threads"}:
        raise ConfigError("PGBOUNCER_WEB_CAPACITY", f"{value!r} is not that", fix)
    counts = {key: value.get(key, 1) for key in ("processes", "threads")}
    for key, count in counts.items():
        if type(count) is not int or count < 1:
            raise ConfigError(
                "PGBOUNCER_WEB_CAPACITY", f"{key} {count!r} is not a count", fix
            )
    return WebCapacity(**counts)


def _admin_urls(value: object) -> tuple[str, ...]:
    """PGBOUNCER_ADMIN_URLS: URLs separated by whitespace (which no URL holds), or a
    list of them."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v.strip())
    raise ConfigError(
        "PGBOUNCER_ADMIN_URLS",
        f"a {type(value).__name__} is not a list of console URLs",
        "set it to the URLs separated by spaces, or to a list of them",
    )


@functools.cache
def app_settings() -> AppSettings:
    """Read once, and again after `override_settings` changes one of them."""
    return AppSettings(
        databases=settings.DATABASES,
        admin_url=getattr(settings, "PGBOUNCER_ADMIN_URL", "") or None,
        admin_urls=_admin_urls(getattr(settings, "PGBOUNCER_ADMIN_URLS", None)),
        web_capacity=_web_capacity(getattr(settings, "PGBOUNCER_WEB_CAPACITY", None)),
        metrics_token=getattr(settings, "METRICS_TOKEN", "") or "",
        asgi=bool(getattr(settings, "ASGI_APPLICATION", None))
        and not getattr(settings, "WSGI_APPLICATION", None),
        behind_proxy=bool(getattr(settings, "SECURE_PROXY_SSL_HEADER", None)),
    )


def settings_all() -> dict[str, Any]:
    """Every setting, by name: for the error reports' filter, which hides the
    secrets among them (django_pgbouncer/reporting.py). Read afresh each time."""
    return {name: getattr(settings, name) for name in dir(settings) if name.isupper()}


# --- PGBOUNCER_ROUTING: where reads may go (django_pgbouncer.routing). ---


@dataclass(frozen=True)
class RoutingSettings:
    """`PGBOUNCER_ROUTING`, validated: the primary's alias, the replicas' aliases,
    how far behind (seconds, as the replica reports it) a replica may be and still
    serve reads, how long a read may wait for a replica to replay the client's
    last write (0: go to the primary at once), how long a replica's status is
    reused and a failed replica left alone, and the LSN cookie's name and age."""

    primary: str = "default"
    replicas: tuple[str, ...] = ()
    max_lag_seconds: float = 5.0
    wait_seconds: float = 0.0
    status_seconds: float = 0.5
    down_seconds: float = 5.0
    cookie_name: str = "pgbouncer_lsn"
    cookie_seconds: int = 300


def _routing_parse(raw: object, databases: Mapping[str, Any]) -> RoutingSettings:
    fix = "see RoutingSettings in django_pgbouncer/conf.py for its keys and types"
    if not isinstance(raw, Mapping):
        raise ConfigError("PGBOUNCER_ROUTING", f"{raw!r} is not a dict", fix)
    known = set(RoutingSettings.__dataclass_fields__)
    if unknown := sorted(set(raw) - known):
        raise ConfigError("PGBOUNCER_ROUTING", f"has unknown keys {unknown}", fix)
    values = {**raw, "replicas": tuple(raw.get("replicas", ()))}
    for key, value in values.items():
        default = getattr(RoutingSettings, key, None)
        if isinstance(default, (int, float)) and (
            type(value) not in (int, float) or value < 0
        ):
            raise ConfigError(
                f"PGBOUNCER_ROUTING[{key!r}]", f"{value!r} is not a number >= 0", fix
            )
        if isinstance(default, str) and not (isinstance(value, str) and value):
            raise ConfigError(
                f"PGBOUNCER_ROUTING[{key!r}]", f"{value!r} is not a name", fix
            )
    routing = RoutingSettings(**values)
    for alias in (routing.primary, *routing.replicas):
        if alias not in databases:
            raise ConfigError(
                "PGBOUNCER_ROUTING",
                f"names the alias {alias!r}, which DATABASES does not have",
                "name aliases of DATABASES (the replicas' from REPLICA_DATABASE_URLS)",
            )
    return routing


@functools.cache
def routing_settings() -> RoutingSettings:
    """Read once, and again after `override_settings` changes it."""
    raw = getattr(settings, "PGBOUNCER_ROUTING", None) or {}
    return _routing_parse(raw, settings.DATABASES)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: object) -> None:
    if setting in _SETTINGS:
        app_settings.cache_clear()
        routing_settings.cache_clear()


def alias_conninfo(entry: Mapping[str, Any]) -> dict[str, Any]:
    """`psycopg.connect()` arguments for a `DATABASES` entry."""
    info = {
        "host": entry["HOST"],
        "port": entry["PORT"],
        "user": entry["USER"],
        "password": entry["PASSWORD"],
        "dbname": entry["NAME"],
    }
    options = entry.get("OPTIONS") or {}
    if "sslmode" in options:
        info["sslmode"] = options["sslmode"]
    return info
