"""The whole stack: PostgreSQL, then PgBouncer in front of it, then gunicorn.

`Stack` starts the two database servers (for `make run` and the test fixtures alike);
`web_child` builds the gunicorn process; `run()` is `make run`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django_pgbouncer import PostgresURL
from django_pgbouncer.errors import ConfigError

from .errors import StackError
from .pgbouncer import PgBouncer, PgBouncerSetup
from .postgres import Postgres, PostgresConfig
from .process import Account, Child, port_require_free, run_checked

PROJECT_DIR = Path(__file__).resolve().parent.parent
APP_USER = APP_DB = "app"
ADMIN_CONSOLE_USER = "pgbouncer_admin"


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip() or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(
            name,
            f"{raw!r} is not a port number",
            f"set {name} to a number from 1 to 65535, or unset it",
        )
    return int(raw)


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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StackSettings:
        seed = env.get("DEVSTACK_SEED_POSTS", "50").strip()
        if not seed.isdigit():
            raise ConfigError(
                "DEVSTACK_SEED_POSTS",
                f"{seed!r} is not a count",
                "set it to a whole number such as 50 (0: none)",
            )
        return cls(
            root=Path(env.get("DEVSTACK_DIR") or PROJECT_DIR / ".devstack").resolve(),
            postgres_port=_port(env, "DEVSTACK_POSTGRES_PORT", 55432),
            pgbouncer_port=_port(env, "DEVSTACK_PGBOUNCER_PORT", 56432),
            web_host=env.get("WEB_HOST", "").strip() or "127.0.0.1",
            web_port=_port(env, "WEB_PORT", 8000),
            seed_posts=int(seed),
            pgbouncer_variables=dict(env),
        )


def secrets_load(path: Path) -> dict[str, str]:
    """The stack's generated passwords: made on the first run, kept after (0600)."""
    wanted = (
        "postgres_password",
        "app_password",
        "admin_console_password",
        "django_secret_key",
    )
    data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if all(key in data for key in wanted):
        return data
    for key in wanted:
        data.setdefault(key, secrets.token_urlsafe(50 if "django" in key else 24))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    return data


class Stack:
    """PostgreSQL and PgBouncer, private to one folder."""

    def __init__(self, settings: StackSettings, *, durable: bool = True) -> None:
        self.settings = settings
        self.account = Account.for_servers()
        settings.root.mkdir(parents=True, exist_ok=True)
        self.account.check_reach(settings.root)
        self.secrets = secrets_load(settings.root / "secrets.json")
        for sub in ("postgres", "pgbouncer"):
            (settings.root / sub).mkdir(exist_ok=True)
            self.account.own(settings.root / sub)
        self.postgres = Postgres(
            PostgresConfig(
                datadir=settings.root / "postgres" / "data",
                port=settings.postgres_port,
                superuser_password=self.secrets["postgres_password"],
                account=self.account,
                durable=durable,
            )
        )
        self.pgbouncer = PgBouncer(
            PgBouncerSetup(
                workdir=settings.root / "pgbouncer",
                port=settings.pgbouncer_port,
                account=self.account,
                variables={
                    **settings.pgbouncer_variables,
                    "POSTGRES_DATABASE_URL": self.direct_url.url(),
                    "PGBOUNCER_ADMIN_URL": self.admin_console_url.url(),
                    "ADMIN_USERS": ADMIN_CONSOLE_USER,
                    "STATS_USERS": ADMIN_CONSOLE_USER,
                },
            )
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
        return PostgresURL(
            ADMIN_CONSOLE_USER,
            self.secrets["admin_console_password"],
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
            "POOL_MODE": self.pgbouncer.config.env().get("POOL_MODE", "transaction"),
        }

    def start(self) -> None:
        try:
            self.postgres.start()
            self.postgres.role_and_database_ensure(self.direct_url)
            self.pgbouncer.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            self.pgbouncer.stop()
        finally:
            self.postgres.stop()


def run_env(stack: Stack, environ: Mapping[str, str]) -> dict[str, str]:
    """What `make run` hands the site: production-shaped (DEBUG off, whitenoise),
    plain HTTP on loopback, the stack's URLs; the caller's variables win."""
    return {
        **environ,
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
    account.check_reach(PROJECT_DIR / "manage.py")
    account.check_reach(Path(sys.executable).resolve())
    metrics = s.root / "metrics"  # the workers' counters, added up by /metrics
    metrics.mkdir(exist_ok=True)
    account.own(metrics)
    return Child(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(PROJECT_DIR / "config" / "gunicorn.py"),
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


def _manage(*args: str, env: Mapping[str, str]) -> str:
    return run_checked(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        what=f"manage.py {args[0]}",
        env=env,
    )


def _stack_env_write(stack: Stack, env: Mapping[str, str]) -> Path:
    path = stack.settings.root / "stack.env"
    lines = [f"WEB_URL={stack.web_url}"] + [
        f"{key}={env[key]}"
        for key in ("DATABASE_URL", "DIRECT_DATABASE_URL", "PGBOUNCER_ADMIN_URL")
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


class _Stop(Exception):
    pass


@contextmanager
def _signals_stop() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def run(environ: Mapping[str, str]) -> int:
    """`make run`: start everything, print where it is, stop it all on Ctrl-C."""
    settings = StackSettings.from_env(environ)
    port_require_free(
        settings.web_host, settings.web_port, what="The web server", variable="WEB_PORT"
    )
    stack = Stack(settings)
    web: Child | None = None
    with _signals_stop():
        try:
            print(f"Starting PostgreSQL and PgBouncer (data in {settings.root}) ...")
            stack.start()
            env = run_env(stack, environ)
            print("Migrating over the direct connection ...")
            _manage("migrate", "--noinput", "-v", "0", env=env)
            _manage("collectstatic", "--noinput", "-v", "0", env=env)
            _manage(
                "seed_posts", "--if-empty", "--count", str(settings.seed_posts), env=env
            )
            # Printed at once: a later failure must not swallow a new password.
            print(f"Admin account: {_manage('admin_ensure', env=env).strip()}")
            web = web_child(stack, env, account=Account.for_servers("nobody"))
            web.start(timeout=30)
            stack_env = _stack_env_write(stack, env)
            print(
                f"\nThe site:   {stack.web_url}/\nThe admin:  {stack.web_url}/admin/"
                f"\nConnection URLs (for psql, tools): {stack_env}\n"
                f"Logs: {settings.root}/*.log, pgbouncer/, postgres/\n"
                "Ctrl-C stops everything.",
                flush=True,
            )
            children = [web, stack.pgbouncer.child, stack.postgres.child]
            while True:
                for child in children:
                    if child is not None and child.exited() is not None:
                        raise StackError(
                            f"{child.name} stopped unexpectedly (exit "
                            f"{child.exited()}); see its log: {child.log}. "
                            "Stopping the rest."
                        )
                time.sleep(0.5)
        except _Stop as stop:
            print(f"\n{stop}: stopping the web server, PgBouncer, PostgreSQL ...")
            return 0
        finally:
            # A second Ctrl-C must not cut the shutdown short: the servers run in
            # sessions of their own and would be left running.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
            try:
                if web is not None:
                    web.stop()
            finally:
                stack.stop()
