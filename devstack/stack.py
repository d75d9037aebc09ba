"""The whole stack: PostgreSQL, then PgBouncer in front of it, then gunicorn.

`Stack` starts the two database servers (for `make run`, the test fixtures and the
benchmarks alike); `run_env` is the site's environment; `web_child` builds the
gunicorn process. `make run` itself is devstack.run.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django_pgbouncer import PostgresURL
from django_pgbouncer.env import env_int, env_port
from django_pgbouncer.render import private_file_write

from .folders import PROJECT_DIR, private_folder_ensure, root_from_env
from .pgbouncer import PgBouncerSetup
from .pgbouncers import PROCESSES_MAX, PROCESSES_VARIABLE, PgBouncers
from .postgres import Postgres, PostgresConfig
from .process import Account, Child
from .reach import reach_ensure
from .replicas import (
    replica_pgbouncer_variables,
    replica_ports_from_env,
    replica_site_env,
    replicas_make,
    replicas_start,
    replicas_stop,
)

__all__ = [
    "APP_DB",
    "APP_USER",
    "MAINTENANCE_CONSOLE_USER",
    "MAINTENANCE_VARIABLE",
    "PROJECT_DIR",
    "STATS_CONSOLE_USER",
    "Stack",
    "StackSettings",
    "run_env",
    "secrets_load",
    "web_child",
]

APP_USER = APP_DB = "app"
# Two console users: the site's may only read (stats_users: SHOW), the operator's
# may PAUSE, RESUME and RECONNECT (admin_users), and is never handed to the site.
STATS_CONSOLE_USER = "pgbouncer_stats"
MAINTENANCE_CONSOLE_USER = "pgbouncer_admin"
MAINTENANCE_VARIABLE = "PGBOUNCER_MAINTENANCE_URL"


@dataclass(frozen=True)
class StackSettings:
    """Where the stack keeps its data and which ports it listens on."""

    root: Path
    postgres_port: int = 55432
    pgbouncer_port: int = 56432
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    seed_posts: int = 50
    # Variables for PgBouncer's renderer (POOL_MODE, DEFAULT_POOL_SIZE, ...).
    pgbouncer_variables: Mapping[str, str] = field(default_factory=dict)
    # Whether the site's role may create databases: the throwaway stacks of the
    # tests and benchmarks run Django's test runner, which creates its test
    # databases; make run's site never does (from_env says no).
    site_createdb: bool = True
    # PgBouncer processes sharing the port (so_reuseport); devstack.pgbouncers.
    pgbouncer_processes: int = 1
    # A streaming replica on each port (devstack.replicas); none by default.
    replica_ports: tuple[int, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StackSettings:
        return cls(
            root=root_from_env(env),
            postgres_port=env_port(env, "DEVSTACK_POSTGRES_PORT", 55432),
            pgbouncer_port=env_port(env, "DEVSTACK_PGBOUNCER_PORT", 56432),
            web_host=env.get("WEB_HOST", "").strip() or "127.0.0.1",
            web_port=env_port(env, "WEB_PORT", 8000),
            seed_posts=env_int(env, "DEVSTACK_SEED_POSTS", 50),
            pgbouncer_variables=dict(env),
            site_createdb=False,
            pgbouncer_processes=env_int(
                env, PROCESSES_VARIABLE, 1, minimum=1, maximum=PROCESSES_MAX
            ),
            replica_ports=replica_ports_from_env(env),
        )


def secrets_load(path: Path) -> dict[str, str]:
    """The stack's generated passwords: made on the first run, kept after (0600)."""
    wanted = (
        "postgres_password",
        "app_password",
        "admin_console_password",
        "maintenance_console_password",
        "django_secret_key",
        "replication_password",
    )
    data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if all(key in data for key in wanted):
        return data
    for key in wanted:
        data.setdefault(key, secrets.token_urlsafe(50 if "django" in key else 24))
    path.parent.mkdir(parents=True, exist_ok=True)
    private_file_write(path, json.dumps(data, indent=2))
    return data


class Stack:
    """PostgreSQL and PgBouncer, private to one folder."""

    def __init__(self, settings: StackSettings, *, durable: bool = True) -> None:
        self.settings = settings
        self.account = Account.for_servers()
        settings.root.mkdir(parents=True, exist_ok=True)
        self.secrets = secrets_load(settings.root / "secrets.json")
        for sub in ("postgres", "pgbouncer"):
            self.account.own(private_folder_ensure(settings.root / sub))
        reach_ensure(
            self.account,
            [(settings.root / sub, "rwx") for sub in ("postgres", "pgbouncer")],
            what="PostgreSQL and PgBouncer",
        )
        self.postgres = Postgres(
            PostgresConfig(
                datadir=settings.root / "postgres" / "data",
                port=settings.postgres_port,
                superuser_password=self.secrets["postgres_password"],
                account=self.account,
                durable=durable,
            )
        )
        self.replicas = replicas_make(
            settings.root / "replicas",
            settings.replica_ports,
            primary=self.postgres.config,
            replication_password=self.secrets["replication_password"],
            account=self.account,
        )
        self.pgbouncer = PgBouncers(
            PgBouncerSetup(
                workdir=settings.root / "pgbouncer",
                port=settings.pgbouncer_port,
                account=self.account,
                variables={
                    **settings.pgbouncer_variables,
                    "POSTGRES_DATABASE_URL": self.direct_url.url(),
                    "PGBOUNCER_ADMIN_URL": self.admin_console_url.url(),
                    MAINTENANCE_VARIABLE: self.maintenance_console_url.url(),
                    "ADMIN_USERS": MAINTENANCE_CONSOLE_USER,
                    "STATS_USERS": STATS_CONSOLE_USER,
                    # A restart starts the new PgBouncer on the port before the old
                    # one leaves, so the port never refuses a client (pgbouncer.py).
                    "SO_REUSEPORT": "1",
                    **replica_pgbouncer_variables(self.replicas),
                },
            ),
            count=settings.pgbouncer_processes,
        )

    @property
    def direct_url(self) -> PostgresURL:
        return PostgresURL(
            APP_USER,
            self.secrets["app_password"],
            "127.0.0.1",
            self.settings.postgres_port,
            APP_DB,
        )

    @property
    def pooled_url(self) -> PostgresURL:
        return self.direct_url.with_(port=self.settings.pgbouncer_port)

    @property
    def admin_console_url(self) -> PostgresURL:
        """The site's console user (PGBOUNCER_ADMIN_URL): stats_users, SHOW only."""
        return PostgresURL(
            STATS_CONSOLE_USER,
            self.secrets["admin_console_password"],
            "127.0.0.1",
            self.settings.pgbouncer_port,
            "pgbouncer",
        )

    @property
    def admin_console_urls(self) -> list[PostgresURL]:
        """The site's console user at each PgBouncer process's own address."""
        url = self.admin_console_url
        return [url.with_(host=host) for host in self.pgbouncer.addresses()]

    @property
    def maintenance_console_url(self) -> PostgresURL:
        """The operator's console user (PGBOUNCER_MAINTENANCE_URL): admin_users,
        for PAUSE, RESUME, RECONNECT. Never in the site's environment."""
        return PostgresURL(
            MAINTENANCE_CONSOLE_USER,
            self.secrets["maintenance_console_password"],
            "127.0.0.1",
            self.settings.pgbouncer_port,
            "pgbouncer",
        )

    @property
    def web_url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def site_env(self) -> dict[str, str]:
        """The variables the site reads to reach this stack."""
        return {
            "DATABASE_URL": self.pooled_url.url(),
            "DIRECT_DATABASE_URL": self.direct_url.url(),
            "PGBOUNCER_ADMIN_URL": self.admin_console_url.url(),
            # Each process's console, for the dashboard and /metrics (the shared
            # port lands on any one of them).
            "PGBOUNCER_ADMIN_URLS": " ".join(u.url() for u in self.admin_console_urls),
            "POOL_MODE": self.pgbouncer.config.env().get("POOL_MODE", "transaction"),
            **replica_site_env(
                self.direct_url, self.settings.pgbouncer_port, len(self.replicas)
            ),
        }

    def start(self) -> None:
        try:
            self.postgres.start()
            self.postgres.role_and_database_ensure(
                self.direct_url, createdb=self.settings.site_createdb
            )
            self.pgbouncer.start()
            # After PgBouncer, which stores the role's SCRAM verifier: a replica
            # copied before would refuse its logins until it replayed that.
            replicas_start(
                self.postgres, self.replicas, self.secrets["replication_password"]
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            self.pgbouncer.stop()
        finally:
            try:
                replicas_stop(self.replicas)
            finally:
                self.postgres.stop()


def run_env(stack: Stack, environ: Mapping[str, str]) -> dict[str, str]:
    """What `make run` hands the site: production-shaped (DEBUG off, whitenoise),
    plain HTTP on loopback, the stack's URLs; the caller's variables win, except
    PGBOUNCER_MAINTENANCE_URL, which the site never holds (a shell that sourced
    stack.env has it)."""
    return {
        **{k: v for k, v in environ.items() if k != MAINTENANCE_VARIABLE},
        **stack.site_env(),
        "DJANGO_DEBUG": environ.get("DJANGO_DEBUG", "0"),
        "DJANGO_HTTPS": environ.get("DJANGO_HTTPS", "0"),
        "DJANGO_SECRET_KEY": environ.get("DJANGO_SECRET_KEY")
        or stack.secrets["django_secret_key"],
        "DJANGO_ALLOWED_HOSTS": environ.get("DJANGO_ALLOWED_HOSTS")
        or f"{stack.settings.web_host},localhost,127.0.0.1",
    }


def web_child(stack: Stack, env: Mapping[str, str], *, account: Account) -> Child:
    """gunicorn serving the site through `stack`'s PgBouncer."""
    s = stack.settings
    # The workers' counters, added up by /metrics.
    metrics = private_folder_ensure(s.root / "metrics")
    account.own(metrics)
    # The code, the virtualenv, the interpreter it links to, and the counters.
    python = Path(sys.executable)
    reach_ensure(
        account,
        [
            (PROJECT_DIR, "rx"),
            (PROJECT_DIR / "config" / "gunicorn.py", "r"),
            (Path(sys.prefix), "rx"),
            (python, "x"),
            (python.resolve(), "x"),
            (metrics, "rwx"),
        ],
        what="the web server",
    )
    return Child(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(PROJECT_DIR / "config" / "gunicorn.py"),
            # Its default, ~/.gunicorn/gunicorn.ctl, is one path for every stack on
            # the machine, and in root's home when the account is nobody.
            "--no-control-socket",
        ],
        log=s.root / "web.log",
        host=s.web_host,
        port=s.web_port,
        account=account,
        env={
            **env,
            "WEB_HOST": s.web_host,
            "WEB_PORT": str(s.web_port),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        },
        cwd=PROJECT_DIR,
    )
