"""`migrate` over the direct connection when there is one.

Migrations hold session state that transaction pooling does not keep (`SET
lock_timeout`, `CREATE INDEX CONCURRENTLY`, long DDL transactions), so when the pooled
alias has a direct twin (DIRECT_DATABASE_URL), `migrate` uses the twin unless
`--database` says otherwise.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.core.management.commands import migrate
from django.db import DEFAULT_DB_ALIAS

from django_pgbouncer.conf import app_settings
from django_pgbouncer.databases import migration_alias


class Command(migrate.Command):
    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=None)

    def execute(self, *args: Any, **options: Any) -> str | None:
        # execute(), not handle(): the system checks that run first need the alias.
        if options.get("database") is None:
            options["database"] = migration_alias(
                app_settings().databases, DEFAULT_DB_ALIAS
            )
            if options["verbosity"] >= 1 and options["database"] != DEFAULT_DB_ALIAS:
                self.stdout.write(
                    f"Migrating over the direct connection ({options['database']!r})."
                )
        return super().execute(*args, **options)
