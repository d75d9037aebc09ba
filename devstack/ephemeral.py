"""Throwaway stacks: PostgreSQL and PgBouncer on free ports in a scratch folder,
for the tests and the benchmarks alike. Nothing is kept: the folder goes at exit."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .process import port_pick
from .stack import Stack, StackSettings

__all__ = ["ephemeral_stack", "scratch_dir"]


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
) -> Iterator[Stack]:
    """A started Stack of its own (fast, not durable); stopped and deleted after."""
    root = scratch_dir(prefix)
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
    finally:
        shutil.rmtree(root, ignore_errors=True)
