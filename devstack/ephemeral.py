"""Throwaway stacks: PostgreSQL and PgBouncer on free ports in a scratch folder,
for the tests and the benchmarks alike, and extra PgBouncers in front of a stack's
PostgreSQL. Nothing is kept: the folders go at exit."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from django_pgbouncer import PostgresURL

from .pgbouncer import PgBouncer, PgBouncerSetup
from .process import port_pick
from .stack import Stack, StackSettings

__all__ = ["ephemeral_pgbouncer", "ephemeral_stack", "scratch_dir"]


def scratch_dir(prefix: str) -> Path:
    """A new folder the servers' unprivileged account can enter (mkdtemp's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@contextmanager
def ephemeral_stack(
    prefix: str,
    *,
    pgbouncer_variables: Mapping[str, str] | None = None,
    seed_posts: int = 50,
    keep_on_error: bool = False,
) -> Iterator[Stack]:
    """A started Stack of its own (fast, not durable); stopped and deleted after.

    `keep_on_error`: when the block (or the start) fails, keep the folder and its
    server logs, and say where they are."""
    root = scratch_dir(prefix)
    failed = False
    try:
        stack = Stack(
            StackSettings(
                root=root,
                postgres_port=port_pick(),
                pgbouncer_port=port_pick(),
                web_port=port_pick(),
                seed_posts=seed_posts,
                pgbouncer_variables=dict(pgbouncer_variables or {}),
            ),
            durable=False,
        )
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()
    except BaseException:
        failed = True
        raise
    finally:
        if failed and keep_on_error:
            print(f"The stack's folder and logs are kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def ephemeral_pgbouncer(
    stack: Stack,
    prefix: str,
    *,
    upstream: PostgresURL | None = None,
    variables: Mapping[str, str] | None = None,
) -> Iterator[PgBouncer]:
    """A started PgBouncer of its own, on a free port, in front of `stack`'s
    PostgreSQL as `upstream` (default: the site's role); stopped and deleted after.
    Clients reach it at `upstream.with_(port=bouncer.config.port)`."""
    upstream = upstream or stack.direct_url
    workdir = scratch_dir(prefix)
    try:
        if upstream.user == stack.direct_url.user:
            # The stack's verifier, so the renderer keeps it: a new salt stored for
            # the role would break the stack's own PgBouncer's next server login.
            shutil.copy(stack.pgbouncer.config.workdir / "userlist.txt", workdir)
        stack.account.own(workdir, *workdir.iterdir())
        bouncer = PgBouncer(
            PgBouncerSetup(
                workdir=workdir,
                port=port_pick(),
                account=stack.account,
                variables={
                    **(variables or {}),
                    "POSTGRES_DATABASE_URL": upstream.url(),
                },
            )
        )
        bouncer.start()
        try:
            yield bouncer
        finally:
            bouncer.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
