"""The pool's state for people (a table) or scripts (--json); exits 1 when not ready.
Docker's health checks run it."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from django_pgbouncer.conf import alias_conninfo, app_settings
from django_pgbouncer.observe import readiness_check

COLUMNS = (
    ("database", "database"),
    ("user", "user"),
    ("mode", "mode"),
    ("cl_active", "clients_active"),
    ("cl_waiting", "clients_waiting"),
    ("sv_active", "servers_active"),
    ("sv_idle", "servers_idle"),
    ("sv_used", "servers_used"),
    ("size", "pool_size"),
    ("maxwait_s", "maxwait_seconds"),
    ("qps", "queries_per_second"),
    ("avg_query_ms", "avg_query_ms"),
)


class Command(BaseCommand):
    help = "Show PgBouncer's pools and whether the site is ready; exit 1 if not."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument(
            "--timeout", type=float, default=2.0, help="seconds for the query"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = readiness_check(
            conninfo=alias_conninfo(connections[DEFAULT_DB_ALIAS].settings_dict),
            admin_url=app_settings().admin_url,
            admin_urls=app_settings().admin_urls,
            timeout=options["timeout"],
        )
        report = result.as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(f"status:  {report['status']} ({report['detail']})")
            self.stdout.write(f"query:   {report['query']}")
            self.stdout.write(f"console: {report['console']}")
            if result.pools:
                rows = [[h for h, _ in COLUMNS]] + [
                    [str(pool[key]) for _, key in COLUMNS] for pool in result.pools
                ]
                widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
                for row in rows:
                    self.stdout.write(
                        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                    )
                for pool in result.pools:
                    for trouble in pool["trouble"]:
                        self.stdout.write(f"trouble: {pool['database']}: {trouble}")
        if not result.ready:
            raise CommandError(f"not ready: {report['status']}", returncode=1)
