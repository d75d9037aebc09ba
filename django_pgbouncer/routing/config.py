"""The `DATABASES` entries of replicas reached through PgBouncer: a pure function,
URLs in, entries out, for settings.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..databases import database_config

__all__ = ["REPLICA_ALIAS_PREFIX", "replica_database_configs"]

REPLICA_ALIAS_PREFIX = "replica"


def replica_database_configs(
    *,
    urls: Sequence[str],
    primary: str = "default",
    variable: str = "REPLICA_DATABASE_URLS",
    **options: Any,
) -> dict[str, dict[str, Any]]:
    """`replica1`, `replica2`, ...: one transaction-pooled alias per URL, with
    `database_config()`'s `options` (pool_mode, guard, conn_max_age, ...). Under
    test each mirrors `primary`: a test database is made once, on the primary,
    and a replica has no database of its own to make."""
    entries = {}
    for number, url in enumerate(urls, start=1):
        entry = database_config(url=url, variable=variable, **options)
        entry["TEST"] = {"MIRROR": primary}
        entries[f"{REPLICA_ALIAS_PREFIX}{number}"] = entry
    return entries
