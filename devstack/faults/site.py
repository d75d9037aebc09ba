"""A private site for a fault: PostgreSQL and PgBouncer (devstack.ephemeral), the
site migrated and seeded, an admin account with a known password, and gunicorn
serving it through PgBouncer, as `make run` serves it."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from django_pgbouncer.observe import console_show

from ..ephemeral import ephemeral_stack
from ..process import Account, Child, run_checked
from ..stack import APP_DB, APP_USER, PROJECT_DIR, Stack, run_env, web_child

__all__ = ["ADMIN_USER", "FaultSite", "fault_site", "pg_ctl"]

ADMIN_USER = "admin"
SEED_POSTS = 50
# make run's shape, smaller: 2 processes of 8 threads, so a test's 8 to 16 clients
# are served at once and /readyz still finds a free thread.
WEB_SHAPE = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "8"}


@dataclass
class FaultSite:
    """The running site: its stack, its web server, the environment the site runs
    with, and the admin login the writers use."""

    stack: Stack
    web: Child
    env: dict[str, str]
    login: tuple[str, str]
    read_paths: tuple[str, ...]

    @property
    def host(self) -> str:
        return self.stack.settings.web_host

    @property
    def port(self) -> int:
        return self.stack.settings.web_port

    def manage(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """`manage.py ARGS` with the site's environment (plus `env`)."""
        return run_checked(
            [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
            what=f"manage.py {args[0]}",
            env={**self.env, **(env or {})},
        )

    def superuser(self) -> psycopg.Connection[Any]:
        """A direct superuser connection to PostgreSQL (autocommit), to ask it."""
        url = self.stack.postgres.config.superuser_url(APP_DB).url()
        return psycopg.connect(url, autocommit=True, connect_timeout=3)

    def console(self, what: str) -> list[Any]:
        """`SHOW <what>` on PgBouncer's console, through the site's read-only user."""
        return console_show(self.stack.admin_console_url.url(), what)

    def config_seconds(self, key: str) -> float:
        """A PgBouncer setting in seconds, as the running PgBouncer reports it."""
        for item in self.console("CONFIG"):
            if item.key == key:
                return float(item.value)
        raise KeyError(f"PgBouncer's SHOW CONFIG has no {key!r}")

    def site_backends(self) -> set[int]:
        """The pids of PostgreSQL's backends serving the site's role."""
        with self.superuser() as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE usename = %s AND datname = %s",
                [APP_USER, APP_DB],
            ).fetchall()
        return {pid for (pid,) in rows}


def _site_prepare(site_env: dict[str, str]) -> tuple[tuple[str, str], str]:
    """Migrate, collect static files, seed, make the admin: (login, detail path)."""
    manage = [sys.executable, str(PROJECT_DIR / "manage.py")]
    run_checked([*manage, "migrate", "--noinput", "-v0"], what="migrate", env=site_env)
    run_checked(
        [*manage, "collectstatic", "--noinput", "-v0"],
        what="collectstatic",
        env=site_env,
    )
    count = str(SEED_POSTS)
    run_checked([*manage, "seed_posts", "--count", count], what="seed", env=site_env)
    password = secrets.token_urlsafe(16)
    run_checked(
        [*manage, "createsuperuser", "--noinput", "--email", "admin@example.com"],
        what="createsuperuser",
        env={
            **site_env,
            "DJANGO_SUPERUSER_USERNAME": ADMIN_USER,
            "DJANGO_SUPERUSER_PASSWORD": password,
        },
    )
    with psycopg.connect(site_env["DIRECT_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT id FROM core_post ORDER BY id LIMIT 1 OFFSET %s", [SEED_POSTS // 2]
        ).fetchone()
    if row is None:
        raise RuntimeError("the seed made no posts")
    return (ADMIN_USER, password), f"/posts/{row[0]}/"


def pg_ctl(stack: Stack, action: str) -> list[str]:
    """`pg_ctl ACTION` on the stack's cluster, as the servers' account (PostgreSQL
    refuses root): an operator's own way to restart PostgreSQL."""
    postgres = stack.postgres
    argv = [
        str(postgres.bindir / "pg_ctl"),
        "-D",
        str(postgres.config.datadir),
        "-l",  # else the new server would hold the caller's stdout open
        str(postgres.log),
        "-m",
        "fast",
        "-w",
        action,
    ]
    name = stack.account.name
    return ["runuser", "-u", name, "--", *argv] if name else argv


def _postgres_strays_stop(stack: Stack) -> None:
    """Stop a PostgreSQL that pg_ctl restarted: the stack's own child exited
    then, so stopping the stack would leave the new one running."""
    child = stack.postgres.child
    pidfile = stack.postgres.config.datadir / "postmaster.pid"
    if child is not None and child.exited() is not None and pidfile.exists():
        run_checked(pg_ctl(stack, "stop"), what="pg_ctl stop")


@contextmanager
def fault_site(
    prefix: str,
    *,
    pgbouncer_variables: Mapping[str, str] | None = None,
    site_variables: Mapping[str, str] | None = None,
    keep_on_error: bool = False,
) -> Iterator[FaultSite]:
    """A started site of its own; everything stopped and deleted after."""
    with ephemeral_stack(
        prefix,
        pgbouncer_variables=pgbouncer_variables,
        seed_posts=SEED_POSTS,
        keep_on_error=keep_on_error,
    ) as stack:
        env = {
            **run_env(stack, os.environ),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **WEB_SHAPE,
            **(site_variables or {}),
        }
        login, detail = _site_prepare(env)
        web = web_child(stack, env, account=Account())
        web.start(timeout=30)
        try:
            yield FaultSite(stack, web, env, login, ("/", detail))
        finally:
            try:
                web.stop()
            finally:
                _postgres_strays_stop(stack)
