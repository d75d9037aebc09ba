"""PostgreSQL URLs, and the `DATABASES` entries for a pooled alias and its direct
twin.

Pure functions: environment values in, a `DATABASES` entry out. URLs are
parsed with urllib, percent-decoded, validated, and never printed whole. A password
may hold any character; characters that a URL reserves (`@ : / ? # %` and space) must
be percent-encoded, e.g. `p%40ss` for `p@ss`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

import dj_database_url

from .conf import AliasOptions, GuardMode, PoolMode, alias_options_set, direct_alias
from .env import line_check, version_parse
from .errors import ConfigError

__all__ = [
    "DEFAULT_CONN_HEALTH_CHECKS",
    "DEFAULT_CONN_MAX_AGE",
    "DIRECT_ALIAS",
    "SCHEMES",
    "PostgresURL",
    "database_config",
    "direct_database_config",
    "guard_mode_parse",
    "migration_alias",
    "password_check",
    "pool_mode_parse",
    "postgres_url_parse",
]

SCHEMES = ("postgres", "postgresql", "pgsql")
_ENCODE_HINT = (
    "write it as postgres://USER:PASSWORD@HOST:PORT/NAME, percent-encoding any "
    "reserved character in the password (@ as %40, : as %3A, / as %2F, # as %23, "
    "% as %25)"
)


@dataclass(frozen=True)
class PostgresURL:
    """The parts of a PostgreSQL URL, decoded."""

    user: str
    password: str = field(repr=False)
    host: str
    port: int
    name: str
    params: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def with_(self, **changes: object) -> PostgresURL:
        """A copy with some parts replaced (host, port, name, ...)."""
        values = {
            "user": self.user,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "name": self.name,
            "params": self.params,
        }
        values.update(changes)
        return PostgresURL(**values)  # type: ignore[arg-type]

    def url(self) -> str:
        """The URL again, every part percent-encoded."""
        return self._url(quote(self.password, safe=""))

    def redacted(self) -> str:
        """The URL with the password masked, and the values of query parameters
        (`?password=`, `?sslpassword=` ...): safe for logs and error messages."""
        return self._url("***" if self.password else "", masked_params=True)

    def _url(self, password: str, *, masked_params: bool = False) -> str:
        auth = quote(self.user, safe="")
        if password:
            auth += ":" + password
        query = "&".join(
            f"{quote(k)}={'***' if masked_params else quote(v)}" for k, v in self.params
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        tail = f"?{query}" if query else ""
        return f"postgres://{auth}@{host}:{self.port}/{quote(self.name, safe='')}{tail}"


def password_check(variable: str, password: str) -> str:
    """`password`, if it can be sent (as UTF-8); the error never shows it."""
    try:
        password.encode()
    except UnicodeEncodeError:
        raise ConfigError(
            variable,
            "the password holds bytes that are not UTF-8 text",
            f"set {variable} as UTF-8 text, percent-encoding any reserved character",
        ) from None
    return password


def _decode(variable: str, what: str, text: str, *, line: bool = True) -> str:
    """A percent-decoded part of a URL, which must be UTF-8 text (on one line,
    with `line`); the error names the part, never its text."""
    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ConfigError(
            variable,
            f"the {what} holds percent-encoded bytes that are not UTF-8",
            _ENCODE_HINT,
        ) from None
    return line_check(variable, decoded, what=what) if line else decoded


def _url_split(value: str, variable: str) -> tuple[SplitResult, int]:
    """The URL's parts and port, each checked before anything is decoded."""
    if not value.strip():
        raise ConfigError(variable, "is empty", _ENCODE_HINT)
    if any(ch in value for ch in "\r\n\0"):
        raise ConfigError(variable, "contains a line break or NUL byte", _ENCODE_HINT)
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        # os.environ's stand-ins for bytes that were not UTF-8 (surrogateescape).
        raise ConfigError(variable, "holds bytes that are not UTF-8", _ENCODE_HINT)
    parts = urlsplit(value.strip())
    if parts.scheme not in SCHEMES:
        shown = parts.scheme or "(none)"
        raise ConfigError(
            variable,
            f"the scheme {shown!r} is not one of {', '.join(SCHEMES)}",
            _ENCODE_HINT,
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(
            variable,
            "the port is not a number from 1 to 65535 (a password holding ':', "
            "'/', '#' or '?' that is not percent-encoded also looks like this)",
            _ENCODE_HINT,
        )
    return parts, port or 5432


def postgres_url_parse(value: str, *, variable: str) -> PostgresURL:
    """Parse and validate `value`; errors name `variable` and never echo the URL.

    The decoded user, host and database name hold no control character: each goes
    into PgBouncer's line-based files, and a `%0A` in one would end a line there.
    """
    parts, port = _url_split(value, variable)
    if not parts.hostname:
        raise ConfigError(variable, "has no host", _ENCODE_HINT)
    if not parts.username:
        raise ConfigError(variable, "has no user name", _ENCODE_HINT)
    path = parts.path.lstrip("/")
    if not unquote(path) or "/" in unquote(path):
        raise ConfigError(variable, "has no database name after the host", _ENCODE_HINT)
    return PostgresURL(
        user=_decode(variable, "user", parts.username),
        password=_decode(variable, "password", parts.password or "", line=False),
        host=_decode(variable, "host", parts.hostname),
        port=port,
        name=_decode(variable, "database name", path),
        params=tuple(parse_qsl(parts.query)),
    )


DIRECT_ALIAS = "direct"

# Persistent connections from each gunicorn thread to PgBouncer. Reconnecting per
# request costs a full SCRAM exchange (PgBouncer 1.18 has no fast ad-hoc SCRAM): the
# list page at 16 clients served 370 req/s with CONN_MAX_AGE=0 and 835 with 600
# (medians of 3 interleaved rounds; configurations 5 and 6 of
# bench/results/latest.json, bench/README.md). An idle client connection costs
# PgBouncer about 2 kB and no PostgreSQL backend.
DEFAULT_CONN_MAX_AGE = 600
# Django's health check is a `SELECT 1` round trip before each request; it cost the
# list page a fifth of its throughput at 16 clients: 586 req/s with it, 716 without
# (medians of interleaved rounds on the site as of commit a4275c1's parent, whose
# list page still counted its rows: bench/results/explore-queries.json, described in
# bench/README.md). Behind PgBouncer only PgBouncer can close a kept connection, and
# django_pgbouncer.guard.stale notices that with a poll() on the socket instead, for
# about a microsecond.
DEFAULT_CONN_HEALTH_CHECKS = False


def pool_mode_parse(value: str, *, variable: str = "POOL_MODE") -> PoolMode:
    """Validate a PgBouncer pool mode name."""
    try:
        return PoolMode(value.strip().lower())
    except ValueError:
        names = ", ".join(PoolMode)
        raise ConfigError(
            variable,
            f"{value!r} is not a pool mode",
            f"set it to one of {names} (transaction is the default)",
        ) from None


def guard_mode_parse(value: str, *, variable: str = "PGBOUNCER_GUARD") -> GuardMode:
    """Validate a mode of the runtime guard (django_pgbouncer.guard)."""
    try:
        return GuardMode(value.strip().lower())
    except ValueError:
        raise ConfigError(
            variable,
            f"{value!r} is not a guard mode",
            f"set it to one of {', '.join(GuardMode)}",
        ) from None


def database_config(
    *,
    url: str,
    pool_mode: str = PoolMode.TRANSACTION,
    conn_max_age: int | None = DEFAULT_CONN_MAX_AGE,
    conn_health_checks: bool = DEFAULT_CONN_HEALTH_CHECKS,
    guard: str = GuardMode.RAISE,
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
    if pgbouncer_version:
        version_parse(pgbouncer_version)
    config: dict[str, Any] = dict(
        dj_database_url.parse(
            url, conn_max_age=conn_max_age, conn_health_checks=conn_health_checks
        )
    )
    options = config.setdefault("OPTIONS", {})
    if mode.shares_sessions:
        # A transaction may run on another server connection than the one before
        # it: a server-side cursor opened outside a transaction would be gone.
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
        # PgBouncer before 1.21 cannot carry prepared statements between clients.
        options["prepare_threshold"] = None
        options.pop("server_side_binding", None)
    alias_options_set(
        config,
        AliasOptions(
            pool_mode=mode,
            guard=guard_mode_parse(guard),
            version=pgbouncer_version or None,
        ),
    )
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
    alias_options_set(config, AliasOptions(direct_for=pooled_alias))
    # Under test the direct alias is the pooled one's database, not a second copy.
    config["TEST"] = {"MIRROR": pooled_alias}
    return config


def migration_alias(databases: Mapping[str, Mapping[str, Any]], alias: str) -> str:
    """The alias that migrations for `alias` should run over: its direct twin if any."""
    return direct_alias(databases, alias) or alias
