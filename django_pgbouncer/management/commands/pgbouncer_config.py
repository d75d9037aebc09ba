"""Write pgbouncer.ini and userlist.txt from the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_pgbouncer.errors import ConfigError
from django_pgbouncer.render import (
    pgbouncer_files_write,
    pgbouncer_version_detect,
    version_parse,
)


class Command(BaseCommand):
    help = (
        "Write pgbouncer.ini and userlist.txt (mode 0600) from POSTGRES_DATABASE_URL, "
        "POOL_MODE, DEFAULT_POOL_SIZE and the other PgBouncer variables."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output-dir", required=True, type=Path, help="where to write the files"
        )
        parser.add_argument(
            "--pgbouncer-version",
            default=os.environ.get("PGBOUNCER_VERSION"),
            help="version of the PgBouncer that reads the files "
            "(default: PGBOUNCER_VERSION, else ask the installed pgbouncer)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            given = options["pgbouncer_version"]
            version = (
                version_parse(given, variable="--pgbouncer-version")
                if given
                else pgbouncer_version_detect()
            )
            ini, userlist = pgbouncer_files_write(
                os.environ, directory=options["output_dir"], version=version
            )
        except ConfigError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"wrote {ini} and {userlist}")
