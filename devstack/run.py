"""`make run`: start PostgreSQL, PgBouncer and gunicorn, say where they are, watch
them, and stop them all on Ctrl-C (or SIGTERM), or when one of them dies."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from django_pgbouncer.render import private_file_write

from .errors import StackError
from .process import Account, Child, port_require_free, run_checked
from .stack import PROJECT_DIR, Stack, StackSettings, run_env, web_child

__all__ = ["run"]


def _manage(*args: str, env: Mapping[str, str]) -> str:
    return run_checked(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        what=f"manage.py {args[0]}",
        env=env,
    )


def _stack_env_write(stack: Stack, env: Mapping[str, str]) -> Path:
    """The connection URLs for psql and `make manage` (0600: they hold passwords)."""
    path = stack.settings.root / "stack.env"
    lines = [f"WEB_URL={stack.web_url}"] + [
        f"{key}={env[key]}"
        for key in ("DATABASE_URL", "DIRECT_DATABASE_URL", "PGBOUNCER_ADMIN_URL")
    ]
    private_file_write(path, "\n".join(lines) + "\n")
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
    print(
        f"\nThe site:   {stack.web_url}/\nThe admin:  {stack.web_url}/admin/"
        f"\nConnection URLs (for psql, tools): {stack_env}\n"
        f"Logs: {stack.settings.root}/*.log, pgbouncer/, postgres/\n"
        "Ctrl-C stops everything.",
        flush=True,
    )


def _watch(children: Sequence[Child | None]) -> NoReturn:
    """Raise when one of `children` exits; until then, wait."""
    while True:
        for child in children:
            if child is not None and child.exited() is not None:
                raise StackError(
                    f"{child.name} stopped unexpectedly (exit {child.exited()}); see "
                    f"its log: {child.log}. Stopping the rest."
                )
        time.sleep(0.5)


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
            env = _site_prepare(stack, environ)
            web = web_child(stack, env, account=Account.for_servers("nobody"))
            web.start(timeout=30)
            _ready_print(stack, _stack_env_write(stack, env))
            _watch([web, stack.pgbouncer.child, stack.postgres.child])
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
    return 1  # not reached: _watch returns only by raising
