"""`make run`: start PostgreSQL, PgBouncer and gunicorn, say where they are, watch
them (devstack.monitor: restarts asked for, crashes), and stop them all on Ctrl-C,
SIGTERM or SIGHUP, or when gunicorn dies.

Its servers die with it however it dies (process.Child); a run that finds servers
an earlier one left behind stops them first and says so (devstack.records)."""

from __future__ import annotations

import shlex
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from django_pgbouncer.render import private_file_write

from .control import control_dir_ensure
from .folders import private_tree_ensure
from .monitor import Monitor
from .process import Account, Child, port_require_free, run_checked
from .procfs import parent_death_signal_set
from .reach import acl_grant, can_access
from .records import run_claim, run_release, servers_record
from .stack import (
    MAINTENANCE_VARIABLE,
    PROJECT_DIR,
    Stack,
    StackSettings,
    run_env,
    web_child,
)

__all__ = ["run"]

# As root, gunicorn runs as this account (the servers as devstack.process's).
WEB_ACCOUNT = "nobody"


def _manage(*args: str, env: Mapping[str, str]) -> str:
    return run_checked(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        what=f"manage.py {args[0]}",
        env=env,
    )


def _stack_env_write(stack: Stack, env: Mapping[str, str]) -> Path:
    """The connection URLs for psql, `make manage` and the maintenance command,
    and the site's Django variables, so that a manage.py command runs with the
    site's settings (0600: they hold passwords and the secret key). The site's
    environment has all but the last line."""
    path = stack.settings.root / "stack.env"
    # Quoted where the shell needs it (PGBOUNCER_ADMIN_URLS holds spaces): make
    # manage sources this file.
    lines = [f"WEB_URL={stack.web_url}"] + [
        f"{key}={shlex.quote(env[key])}"
        for key in (
            "DATABASE_URL",
            "DIRECT_DATABASE_URL",
            "PGBOUNCER_ADMIN_URL",
            "PGBOUNCER_ADMIN_URLS",
            "DJANGO_DEBUG",
            "DJANGO_HTTPS",
            "DJANGO_SECRET_KEY",
            "DJANGO_ALLOWED_HOSTS",
            "REPLICA_DATABASE_URLS",  # with DEVSTACK_REPLICAS only
        )
        if key in env
    ]
    lines.append(f"{MAINTENANCE_VARIABLE}={stack.maintenance_console_url.url()}")
    private_file_write(path, "\n".join(lines) + "\n")
    return path


def _folder_private(root: Path, accounts: Sequence[Account]) -> None:
    """The run's folder its owner's alone: folders 0700, files 0600, also where an
    older run left them looser. As root, the servers' accounts may pass it (search
    only, an ACL entry each) to reach the folders they own in it."""
    private_tree_ensure(root, skip=[root / "postgres" / "data"])
    for account in accounts:
        if account.uid is not None and not can_access(account, root, "x"):
            acl_grant(account, root, what="make run's servers")


class _Stop(Exception):
    pass


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _signals_stop() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP (the terminal closed, or the parent died, below)
    stop the run cleanly. A SIGHUP ignored when we started (nohup) stays ignored."""

    def handler(signum: int, frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    old = {
        sig: signal.signal(sig, handler)
        for sig in STOP_SIGNALS
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    if signal.SIGHUP in old:
        # make run's own parent (make, a shell, a test) dying by SIGKILL sends no
        # SIGHUP; the kernel sends one then, and the run stops cleanly.
        parent_death_signal_set(signal.SIGHUP)
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _site_prepare(stack: Stack, environ: Mapping[str, str]) -> dict[str, str]:
    """Migrate, collect the static files, seed, ensure the admin; return the site's
    environment."""
    env = run_env(stack, environ)
    print("Migrating over the direct connection ...")
    _manage("migrate", "--noinput", "-v", "0", env=env)
    _manage("collectstatic", "--noinput", "-v", "0", env=env)
    seed = str(stack.settings.seed_posts)
    _manage("seed_posts", "--if-empty", "--count", seed, env=env)
    # Printed at once: a later failure must not swallow a new password.
    print(f"Admin account: {_manage('admin_ensure', env=env).strip()}")
    return env


def _ready_print(stack: Stack, stack_env: Path) -> None:
    bouncers = stack.pgbouncer
    if bouncers.count > 1:
        print(
            f"\nPgBouncer: {bouncers.count} processes on port {bouncers.config.port}"
            f" (so_reuseport), each also at {', '.join(bouncers.addresses())}; "
            "make restart-pgbouncer restarts them one at a time."
        )
    print(
        f"\nThe site:   {stack.web_url}/\nThe admin:  {stack.web_url}/admin/"
        f"\nConnection URLs (for psql, tools): {stack_env}\n"
        f"Logs: {stack.settings.root}/*.log, pgbouncer/, postgres/\n"
        "Restart a server: make restart-postgres, make restart-pgbouncer.\n"
        "Ctrl-C stops everything.",
        flush=True,
    )


def _stack_start(stack: Stack, environ: Mapping[str, str]) -> dict[str, str]:
    """PostgreSQL and PgBouncer up and recorded, the site prepared; the site's
    environment."""
    root = stack.settings.root
    print(f"Starting PostgreSQL and PgBouncer (data in {root}) ...")
    stack.start()
    servers_record(root, [stack.postgres.child, *stack.pgbouncer.children])
    return _site_prepare(stack, environ)


def _web_start(stack: Stack, web: Child, env: Mapping[str, str]) -> None:
    try:
        web.start(timeout=30)
    finally:
        servers_record(
            stack.settings.root,
            [stack.postgres.child, *stack.pgbouncer.children, web],
        )
    _ready_print(stack, _stack_env_write(stack, env))


def run(environ: Mapping[str, str]) -> int:
    """`make run`: start everything, print where it is, stop it all on Ctrl-C."""
    settings = StackSettings.from_env(environ)
    _folder_private(
        settings.root, [Account.for_servers(), Account.for_servers(WEB_ACCOUNT)]
    )
    for line in run_claim(settings.root):
        print(line, flush=True)
    control_dir_ensure(settings.root)
    port_require_free(
        settings.web_host, settings.web_port, what="The web server", variable="WEB_PORT"
    )
    stack = Stack(settings)
    web: Child | None = None
    with _signals_stop():
        try:
            env = _stack_start(stack, environ)
            web = web_child(stack, env, account=Account.for_servers(WEB_ACCOUNT))
            _web_start(stack, web, env)
            Monitor(stack, web).watch()
        except _Stop as stop:
            print(f"\n{stop}: stopping the web server, PgBouncer, PostgreSQL ...")
            return 0
        finally:
            # A second Ctrl-C must not cut the shutdown short: the servers run in
            # sessions of their own and would be left running.
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            try:
                if web is not None:
                    web.stop()
            finally:
                stack.stop()
                run_release(settings.root)
    return 1  # not reached: watch() returns only by raising
