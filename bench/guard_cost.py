"""What the runtime guard costs per query.

1. The classifier alone on the queries the site really sends (timeit, best of 5).
2. A query through PgBouncer with the guard on and off, interleaved in rounds.

    .venv/bin/python -m bench.guard_cost [--rounds 5] [--queries 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

SITE_QUERIES = {
    "list page": 'SELECT "core_post"."id", "core_post"."title", "core_post".'
    '"created_at" FROM "core_post" ORDER BY "core_post"."created_at" DESC, '
    '"core_post"."id" DESC LIMIT 20',
    "count": 'SELECT COUNT(*) AS "__count" FROM "core_post"',
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

    from devstack.process import port_pick
    from devstack.stack import Stack, StackSettings

    root = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    root.chmod(0o755)
    stack = Stack(
        StackSettings(root=root, postgres_port=port_pick(), pgbouncer_port=port_pick())
    )
    stack.start()
    try:
        os.environ.update(stack.site_env())
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        django.setup()
        from django.db import connection

        from django_pgbouncer import GuardMode
        from django_pgbouncer.guard import SessionStateGuard

        connection.ensure_connection()
        (guard,) = [
            w for w in connection.execute_wrappers if isinstance(w, SessionStateGuard)
        ]
        sql = "SELECT oid, relname, relpages FROM pg_class ORDER BY oid LIMIT 20"
        results: dict[str, list[float]] = {"guard on": [], "guard off": []}
        for _ in range(rounds):
            for name, mode in (
                ("guard on", GuardMode.RAISE),
                ("guard off", GuardMode.OFF),
            ):
                guard.mode = mode
                with connection.cursor() as cursor:
                    start = time.perf_counter()
                    for _ in range(queries):
                        cursor.execute(sql)
                        cursor.fetchall()
                    results[name].append((time.perf_counter() - start) / queries * 1e6)
        return results
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    ns = classifier_ns()
    print("classifier alone, ns per query (best of 5 x 20,000):")
    for name, value in ns.items():
        print(f"  {name:20} {value:8.0f} ns")
    e2e = through_pgbouncer(args.rounds, args.queries)
    print(
        f"a query through PgBouncer, us per query, median of {args.rounds} "
        f"interleaved rounds of {args.queries} (min..max):"
    )
    for name, runs in e2e.items():
        print(
            f"  {name:10} {statistics.median(runs):7.1f} us "
            f"({min(runs):.1f}..{max(runs):.1f})"
        )
    out = Path(__file__).parent / "results" / "guard_cost.json"
    out.write_text(
        json.dumps({"classifier_ns": ns, "through_pgbouncer_us": e2e}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
