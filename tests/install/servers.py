"""Helpers for the tests that create databases on the session's servers and run
`manage.py` against them in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import psycopg
from psycopg import sql

from devstack.stack import Stack
from django_pgbouncer import redact

# Room for creating, migrating, copying and dropping the test databases.
MANAGE_TIMEOUT = 240


def superuser(stack: Stack) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit superuser connection to PostgreSQL itself."""
    url = stack.postgres.config.superuser_url("postgres").url()
    return psycopg.connect(url, autocommit=True)


def database_recreate(stack: Stack, name: str) -> None:
    """An empty database `name`, owned by the site's role."""
    with superuser(stack) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(stack.direct_url.user)
            )
        )


def databases_drop(stack: Stack, prefix: str) -> None:
    """Drop every database whose name starts with `prefix`, sessions and all."""
    with superuser(stack) as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
            [prefix],
        ).fetchall()
        for (name,) in names:
            conn.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                    sql.Identifier(str(name))
                )
            )


def databases_named(stack: Stack, prefix: str) -> list[str]:
    with superuser(stack) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)"
            " ORDER BY datname",
            [prefix],
        ).fetchall()
    return [str(name) for (name,) in rows]


def stack_secrets(stack: Stack) -> list[str]:
    return [
        stack.direct_url.password,
        stack.admin_console_url.password,
        *stack.secrets.values(),
    ]


def manage(
    stack: Stack,
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
) -> subprocess.CompletedProcess[str]:
    """`python manage.py ARGS` in `cwd`, with `env` over this process's environment;
    its output with every secret of the stack masked."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=MANAGE_TIMEOUT,
        check=False,
    )
    secrets = stack_secrets(stack)
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        redact(result.stdout, secrets),
        redact(result.stderr, secrets),
    )


def shown(result: subprocess.CompletedProcess[str]) -> str:
    """A run's command and output, for an assertion message."""
    command = " ".join(str(part) for part in result.args[1:])
    return f"$ {command} (exit {result.returncode})\n{result.stdout}{result.stderr}"
