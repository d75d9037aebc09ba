"""PgBouncer's `pgbouncer.ini` and `userlist.txt`, rendered from environment variables.

The variable names are those of the edoburu/pgbouncer image (the key in capitals:
`pool_mode` -> `POOL_MODE`), with its known defects fixed: the upstream URL is parsed
and percent-decoded, every value is validated, a key the target PgBouncer version
does not know is refused (PgBouncer will not start with one), and `userlist.txt`
holds SCRAM-SHA-256 verifiers only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..databases import (
    PostgresURL,
    password_check,
    pool_mode_parse,
    postgres_url_parse,
)
from ..env import (
    bool_parse,
    choice_parse,
    int_parse,
    line_check,
    port_parse,
    seconds_parse,
    text_parse,
    version_parse,
)
from ..errors import ConfigError

__all__ = [
    "SETTINGS",
    "PgBouncerConfig",
    "Setting",
    "ini_render",
    "pgbouncer_config_from_env",
    "version_parse",
]

Version = tuple[int, int]
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_HOST = re.compile(r"[A-Za-z0-9_.\-:]+")  # a name, IPv4, or IPv6 without brackets
# PgBouncer 1.18 keeps names in fixed buffers with their NUL (MAX_DBNAME 64,
# MAX_USERNAME 128): a longer database name stops it at start; a longer user
# name in userlist.txt stops it loading the file ("username too long").
DBNAME_BYTES_MAX = 63
USER_BYTES_MAX = 127


def _int(minimum: int) -> Callable[[str, str], str]:
    def parse(variable: str, value: str) -> str:
        return str(int_parse(variable, value, minimum=minimum))

    return parse


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(variable: str, value: str) -> str:
        return choice_parse(variable, value, choices)

    return parse


def _names(variable: str, value: str) -> str:
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if not _NAME.fullmatch(n)]
    if bad:
        raise ConfigError(
            variable,
            f"{bad[0]!r} is not a plain user or parameter name",
            f"set {variable} to comma-separated names of letters, digits, _ . -",
        )
    return ", ".join(names)


def _bool(variable: str, value: str) -> str:
    return "1" if bool_parse(variable, value) else "0"


_seconds = seconds_parse
_text = text_parse


@dataclass(frozen=True)
class Setting:
    """One `pgbouncer.ini` key: its variable, validator, default and first version."""

    key: str
    parse: Callable[[str, str], str]
    default: str | None = None
    since: Version = (1, 0)

    @property
    def variable(self) -> str:
        return self.key.upper()


# Keys rendered into [pgbouncer]. Defaults differ from PgBouncer's own where noted.
SETTINGS: tuple[Setting, ...] = (
    Setting("listen_addr", _text, "127.0.0.1"),  # safe; containers set 0.0.0.0
    Setting(
        "listen_port", lambda v, x: str(port_parse(v, x)), "5432"
    ),  # the image's port
    Setting("unix_socket_dir", _text, ""),  # TCP only: no socket in a shared /tmp
    Setting(
        "pool_mode", lambda v, x: pool_mode_parse(x, variable=v).value, "transaction"
    ),
    # userlist.txt holds SCRAM verifiers only: md5 fails against servers that store
    # SCRAM (PostgreSQL 14+ by default), and plain would put passwords on disk.
    Setting("auth_type", _choice("scram-sha-256", "hba"), "scram-sha-256"),
    Setting("auth_hba_file", _text),
    # PgBouncer's own 100 refused a web tier of 6 x 32 threads (a client per
    # thread). 600 holds bench/fanout.py's largest tier (4 nodes x 2 workers x 32
    # threads = 256) twice over, as during a deploy that starts the new tier
    # before the old one leaves, plus the console users; with the pool's servers
    # it stays under the usual 1024 open-files limit (each client or server costs
    # PgBouncer one descriptor).
    Setting("max_client_conn", _int(1), "600"),
    Setting("default_pool_size", _int(1)),
    Setting("min_pool_size", _int(0)),
    Setting("reserve_pool_size", _int(0)),
    Setting("reserve_pool_timeout", _seconds),
    Setting("max_db_connections", _int(0)),
    Setting("max_user_connections", _int(0)),
    Setting("server_round_robin", _bool),
    Setting("server_reset_query", _text),
    Setting("server_reset_query_always", _bool),
    Setting("server_check_delay", _seconds),
    Setting("server_check_query", _text),
    Setting("server_fast_close", _bool, since=(1, 17)),
    Setting("server_lifetime", _seconds),
    Setting("server_idle_timeout", _seconds),
    Setting("server_connect_timeout", _seconds),
    # PgBouncer waits 15 s after a failed server login before trying again, and
    # fails new clients meanwhile; after a PostgreSQL restart that is 15 s of errors.
    Setting("server_login_retry", _seconds, "2"),
    Setting("client_login_timeout", _seconds),
    Setting("query_timeout", _seconds),
    # How long a client waits for a server connection before PgBouncer fails it
    # (the site then answers 503). Measured with a pool of 1: a normal queue waits
    # at most 14 ms, so 10 s is no false alarm, lets a planned PAUSE of several
    # seconds pass, and keeps the worst wait of a user queued in gunicorn too at
    # about 20 s (twice the timeout); at 20 s it was 40 s. Below gunicorn's 30 s.
    Setting("query_wait_timeout", _seconds, "10"),
    Setting("client_idle_timeout", _seconds),
    Setting("idle_transaction_timeout", _seconds),
    Setting("ignore_startup_parameters", _names),
    Setting("admin_users", _names),
    Setting("stats_users", _names),
    Setting("stats_period", _int(1)),
    Setting("log_connections", _bool),
    Setting("log_disconnections", _bool),
    Setting("log_pooler_errors", _bool),
    Setting("verbose", _int(0)),
    Setting("application_name_add_host", _bool),
    Setting("tcp_keepalive", _bool),
    Setting("so_reuseport", _bool, since=(1, 12)),
    Setting(
        "client_tls_sslmode",
        _choice("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    ),
    Setting("client_tls_key_file", _text),
    Setting("client_tls_cert_file", _text),
    Setting("client_tls_ca_file", _text),
    Setting(
        "server_tls_sslmode",
        _choice("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    ),
    Setting("server_tls_ca_file", _text),
    Setting("track_extra_parameters", _names, since=(1, 20)),
    Setting("max_prepared_statements", _int(0), since=(1, 21)),
    Setting("max_db_client_connections", _int(0), since=(1, 24)),
    Setting("transaction_timeout", _seconds, since=(1, 25)),
    Setting("scram_iterations", _int(1), since=(1, 25)),
)


@dataclass(frozen=True)
class PgBouncerConfig:
    """Everything needed to write PgBouncer's two files."""

    upstream: PostgresURL
    settings: tuple[tuple[str, str], ...]
    users: tuple[tuple[str, str], ...]  # (name, password) for userlist.txt
    auth_file: str
    # (database, host, port): a [databases] entry per streaming replica of the
    # upstream, NAME_replica1 ..., the same database on another server.
    replicas: tuple[tuple[str, str, int], ...] = ()

    def setting(self, key: str) -> str | None:
        return dict(self.settings).get(key)


def _upstream_from_env(env: Mapping[str, str]) -> tuple[PostgresURL, str, str]:
    """The upstream, and the variables to blame for its name and its password."""
    if env.get("POSTGRES_DATABASE_URL", "").strip():
        url = postgres_url_parse(
            env["POSTGRES_DATABASE_URL"], variable="POSTGRES_DATABASE_URL"
        )
        return url, "POSTGRES_DATABASE_URL", "POSTGRES_DATABASE_URL"
    if env.get("DB_HOST", "").strip():  # the image's other spelling
        port = port_parse("DB_PORT", env.get("DB_PORT", "") or "5432")
        user = _user_check("DB_USER", env.get("DB_USER", "postgres"))
        url = PostgresURL(
            user=user,
            password=password_check("DB_PASSWORD", env.get("DB_PASSWORD", "")),
            host=_text("DB_HOST", env["DB_HOST"]),
            port=port,
            name=env.get("DB_NAME", user),
        )
        return url, "DB_NAME", "DB_PASSWORD"
    raise ConfigError(
        "POSTGRES_DATABASE_URL",
        "is not set, so PgBouncer has no PostgreSQL server to pool",
        "set POSTGRES_DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/NAME "
        "(the server itself, not PgBouncer)",
    )


def _dbname_check(variable: str, name: str) -> None:
    """A database name fit to be a key of [databases] (PgBouncer's buffer)."""
    if not _NAME.fullmatch(name) or len(name) > DBNAME_BYTES_MAX:
        raise ConfigError(
            variable,
            f"the database name {name!r} has characters PgBouncer's "
            f"configuration cannot hold, or more than {DBNAME_BYTES_MAX} of them",
            f"use a database name of 1 to {DBNAME_BYTES_MAX} letters, digits, _ . -",
        )


def _user_check(variable: str, name: str) -> str:
    """A user name that fits a line of userlist.txt and PgBouncer's buffer."""
    line_check(variable, name, what="user")
    if len(name.encode()) > USER_BYTES_MAX:
        raise ConfigError(
            variable,
            f"the user name is {len(name.encode())} bytes long, and PgBouncer "
            f"refuses userlist.txt with one over {USER_BYTES_MAX}",
            "use a shorter role name",
        )
    return name


def _users_from_env(
    env: Mapping[str, str], upstream: PostgresURL, password_variable: str, admins: str
) -> dict[str, str]:
    """userlist.txt's users: the upstream role, and the two console users. The
    site's (PGBOUNCER_ADMIN_URL) belongs in stats_users; the maintenance command's
    (PGBOUNCER_MAINTENANCE_URL) in admin_users, and is never the site's."""
    users = {upstream.user: upstream.password}
    blame = {upstream.user: password_variable}
    admin_url = env.get("PGBOUNCER_ADMIN_URL", "").strip()
    if admin_url:
        admin = postgres_url_parse(admin_url, variable="PGBOUNCER_ADMIN_URL")
        users.setdefault(admin.user, admin.password)
        blame.setdefault(admin.user, "PGBOUNCER_ADMIN_URL")
    maintenance_url = env.get("PGBOUNCER_MAINTENANCE_URL", "").strip()
    if maintenance_url:
        user = _maintenance_user(maintenance_url, blame, admins)
        users[user.user] = user.password
        blame[user.user] = "PGBOUNCER_MAINTENANCE_URL"
    for name, password in users.items():
        _user_check(blame[name], name)
        if not password:
            raise ConfigError(
                blame[name],
                f"the user {name!r} has no password, and SCRAM needs one",
                "put the password in the URL (postgres://USER:PASSWORD@...)",
            )
    return users


def _maintenance_user(url: str, blame: Mapping[str, str], admins: str) -> PostgresURL:
    variable = "PGBOUNCER_MAINTENANCE_URL"
    user = postgres_url_parse(url, variable=variable)
    if user.user in blame:
        raise ConfigError(
            variable,
            f"its user {user.user!r} is {blame[user.user]}'s too, so the site would "
            "hold the right to PAUSE",
            f"give {variable} a user of its own, listed in ADMIN_USERS",
        )
    if user.user not in [name.strip() for name in admins.split(",")]:
        raise ConfigError(
            variable,
            f"its user {user.user!r} is not in ADMIN_USERS, so it cannot PAUSE",
            f"add {user.user} to ADMIN_USERS",
        )
    return user


def _replicas_from_env(
    env: Mapping[str, str], upstream: PostgresURL
) -> tuple[tuple[str, str, int], ...]:
    """POSTGRES_REPLICA_HOSTS (HOST:PORT, comma-separated) as [databases] entries."""
    variable = "POSTGRES_REPLICA_HOSTS"
    items = [i.strip() for i in env.get(variable, "").split(",") if i.strip()]
    replicas = []
    for number, item in enumerate(items, start=1):
        split = urlsplit(f"//{item}")
        try:
            port = split.port
        except ValueError:
            port = None
        host = split.hostname or ""
        if not _HOST.fullmatch(host) or port is None or split.path or "@" in item:
            # Not quoted: a mistyped entry may hold a password.
            raise ConfigError(
                variable,
                f"its entry {number} is not HOST:PORT",
                "set it to the replicas' HOST:PORT, comma-separated "
                "(e.g. replica1:5432,replica2:5432)",
            )
        name = f"{upstream.name}_replica{number}"
        _dbname_check(variable, name)
        replicas.append((name, host, port_parse(variable, str(port))))
    return tuple(replicas)


def pgbouncer_config_from_env(
    env: Mapping[str, str], *, version: Version, auth_file: str
) -> PgBouncerConfig:
    """Validate the environment into a config for PgBouncer `version`."""
    upstream, name_variable, password_variable = _upstream_from_env(env)
    _dbname_check(name_variable, upstream.name)
    rendered: list[tuple[str, str]] = []
    for setting in SETTINGS:
        raw = env.get(setting.variable)
        if raw is None or (raw.strip() == "" and setting.default != ""):
            if setting.default is None:
                continue
            value = setting.default
        else:
            value = setting.parse(setting.variable, raw)
            if version < setting.since:
                raise ConfigError(
                    setting.variable,
                    f"needs PgBouncer {'.'.join(map(str, setting.since))} or later, "
                    f"and this one is {'.'.join(map(str, version))}",
                    f"unset {setting.variable}, or run a newer PgBouncer",
                )
        rendered.append((setting.key, value))
    # ?sslmode= on the upstream URL: PgBouncer's TLS to the server is a global key.
    sslmode = dict(upstream.params).get("sslmode")
    if sslmode and not env.get("SERVER_TLS_SSLMODE", "").strip():
        parse = next(s for s in SETTINGS if s.key == "server_tls_sslmode").parse
        rendered.append(("server_tls_sslmode", parse("POSTGRES_DATABASE_URL", sslmode)))
    users = _users_from_env(
        env, upstream, password_variable, dict(rendered).get("admin_users", "")
    )
    return PgBouncerConfig(
        upstream=upstream,
        settings=tuple(rendered),
        users=tuple(users.items()),
        auth_file=auth_file,
        replicas=_replicas_from_env(env, upstream),
    )


def _connstr_quote(value: str) -> str:
    # PgBouncer's connect-string parser: a value in single quotes, ' doubled.
    return "'" + value.replace("'", "''") + "'"


def ini_render(config: PgBouncerConfig) -> str:
    """The text of `pgbouncer.ini`. It holds no password.

    PgBouncer logs in to PostgreSQL with the keys of the client's own SCRAM login
    ("pass-through"), which works when userlist.txt holds the very verifier that
    PostgreSQL stores; `pgbouncer_files_write` makes sure it does.
    """
    up = config.upstream
    server = f"host={_connstr_quote(up.host)} port={up.port}"
    lines = [
        "; Rendered by django_pgbouncer from environment variables; edits are lost.",
        "[databases]",
        f"{up.name} = {server} dbname={_connstr_quote(up.name)}",
        *(
            f"{name} = host={_connstr_quote(host)} port={port} "
            f"dbname={_connstr_quote(up.name)}"
            for name, host, port in config.replicas
        ),
        # Any other database name (psql to postgres, say) goes to the same server.
        f"* = {server}",
        "",
        "[pgbouncer]",
        f"auth_file = {config.auth_file}",
    ]
    lines += [f"{key} = {value}" for key, value in config.settings]
    return "\n".join(lines) + "\n"
