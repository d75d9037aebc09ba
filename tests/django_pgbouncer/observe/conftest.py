"""Two PgBouncer processes on one port (devstack.pgbouncers) in front of the
session's PostgreSQL, for the views that sum over processes and show each."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devstack.ephemeral import scratch_dir
from devstack.pgbouncer import PgBouncerSetup
from devstack.pgbouncers import PgBouncers
from devstack.process import port_pick
from devstack.stack import STATS_CONSOLE_USER, Stack


@dataclass(frozen=True)
class Processes:
    bouncers: PgBouncers
    url: str  # the site's role through the shared port
    consoles: list[str]  # each process's own console


@pytest.fixture(scope="module")
def processes(stack: Stack) -> Iterator[Processes]:
    workdir = scratch_dir("test-observe-processes-")
    try:
        # The stack's verifier, kept by the renderer (one per role).
        shutil.copy(stack.pgbouncer.config.workdir / "userlist.txt", workdir)
        stack.account.own(workdir, *workdir.iterdir())
        port = port_pick()
        bouncers = PgBouncers(
            PgBouncerSetup(
                workdir=workdir,
                port=port,
                account=stack.account,
                variables={
                    "POSTGRES_DATABASE_URL": stack.direct_url.url(),
                    "PGBOUNCER_ADMIN_URL": stack.admin_console_url.url(),
                    "STATS_USERS": STATS_CONSOLE_USER,
                    "DEFAULT_POOL_SIZE": "2",
                    "SO_REUSEPORT": "1",
                },
            ),
            count=2,
        )
        bouncers.start()
        try:
            console = stack.admin_console_url.with_(port=port)
            yield Processes(
                bouncers,
                stack.direct_url.with_(port=port).url(),
                [console.with_(host=a).url() for a in bouncers.addresses()],
            )
        finally:
            bouncers.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
