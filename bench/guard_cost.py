"""What the runtime guard costs per query.

1. The classifier alone on the queries the site really sends (timeit, best of 5).
2. A query through PgBouncer with the guard on and off, interleaved in rounds.

    .venv/bin/python -m bench.guard_cost [--rounds 5] [--queries 2000] [--json]

bench.harness runs it (--json) and keeps the figures in its result file; alone it
prints them and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import timeit
from typing import Any

# As core.selectors sends them (the list page reads one row more than it shows).
SITE_QUERIES = {
    "list page": 'SELECT "core_post"."id", "core_post"."title", "core_post".'
    '"created_at" FROM "core_post" ORDER BY "core_post"."created_at" DESC, '
    '"core_post"."id" DESC LIMIT 21',
    "detail page": 'SELECT "core_post"."id", "core_post"."title", "core_post".'
    '"content", "core_post"."created_at", "core_post"."updated_at" FROM '
    '"core_post" WHERE "core_post"."id" = %s LIMIT 21',
    "update (has SET)": 'UPDATE "core_post" SET "title" = %s, "updated_at" = %s '
    'WHERE "core_post"."id" = %s',
    "session (hazard)": "SET statement_timeout = 5000",
}


def classifier_ns() -> dict[str, float]:
    from django_pgbouncer.guard import session_state_find

    out = {}
    for name, sql in SITE_QUERIES.items():
        runs = timeit.repeat(
            f"find({sql!r})",
            globals={"find": session_state_find},
            number=20000,
            repeat=5,
        )
        out[name] = min(runs) / 20000 * 1e9
    return out


def through_pgbouncer(rounds: int, queries: int) -> dict[str, list[float]]:
    import django

    from devstack.ephemeral import ephemeral_stack

    with ephemeral_stack("bench-guard-") as stack:
        os.environ.update(stack.site_env())
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        django.setup()
        return _rounds_time(rounds, queries)


def _rounds_time(rounds: int, queries: int) -> dict[str, list[float]]:
    """Microseconds per query, guard on and off in turn, on one connection."""
    from django.db import connection

    from django_pgbouncer import GuardMode
    from django_pgbouncer.guard import SessionStateGuard

    connection.ensure_connection()
    (guard,) = [
        w for w in connection.execute_wrappers if isinstance(w, SessionStateGuard)
    ]
    sql = "SELECT oid, relname, relpages FROM pg_class ORDER BY oid LIMIT 20"
    modes = {"guard on": GuardMode.RAISE, "guard off": GuardMode.OFF}
    results: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(rounds):
        for name, mode in modes.items():
            guard.mode = mode
            with connection.cursor() as cursor:
                start = time.perf_counter()
                for _ in range(queries):
                    cursor.execute(sql)
                    cursor.fetchall()
                results[name].append((time.perf_counter() - start) / queries * 1e6)
    return results


def _print(result: dict[str, Any], rounds: int, queries: int) -> None:
    print("classifier alone, ns per query (best of 5 x 20,000):")
    for name, value in result["classifier_ns"].items():
        print(f"  {name:20} {value:8.0f} ns")
    print(
        f"a query through PgBouncer, us per query, median of {rounds} "
        f"interleaved rounds of {queries} (min..max):"
    )
    for name, runs in result["through_pgbouncer_us"].items():
        print(
            f"  {name:10} {statistics.median(runs):7.1f} us "
            f"({min(runs):.1f}..{max(runs):.1f})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guard_cost")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    args = parser.parse_args()
    result = {
        "classifier_ns": classifier_ns(),
        "through_pgbouncer_us": through_pgbouncer(args.rounds, args.queries),
    }
    if args.json:
        print(json.dumps(result))
    else:
        _print(result, args.rounds, args.queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
