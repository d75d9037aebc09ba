"""What the runtime guard costs per query, against a query through PgBouncer.

1. The classifier alone on the queries the site really sends, each call on a new
   string object as Django builds them (so the cache pays for hashing the text):
   timeit, best of 5. And a first reading of each (the cache emptied): the parser.
2. The guard's execute wrapper alone, with a no-op execute, on the same queries.
3. A query through PgBouncer with the guard on and off, interleaved in rounds.
The guard's share: (2) over the median query of (3) with the guard off.

    .venv/bin/python -m bench.guard_cost [--rounds 5] [--queries 2000] [--json]
        [--write]

bench.harness runs it (--json) and keeps the figures in its result file. --write
keeps them in results/guard_cost.md; alone it prints them and writes nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULT = Path(__file__).resolve().parent / "results" / "guard_cost.md"
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
_CALLS = 20000
_MEASURED = ("django_pgbouncer/guard", "bench/guard_cost.py")


def _fresh(sql: str, count: int) -> list[str]:
    """`count` equal strings that are distinct objects, none with its hash known."""
    return [(sql + " ")[:-1] for _ in range(count)]


def _per_call_ns(call: Callable[[str], Any], sql: str) -> float:
    best = float("inf")
    for _ in range(5):
        texts = _fresh(sql, _CALLS)
        start = time.perf_counter()
        for text in texts:
            call(text)
        best = min(best, time.perf_counter() - start)
    return best / _CALLS * 1e9


def classifier_ns() -> dict[str, float]:
    from django_pgbouncer.guard import session_state_find

    session_state_find("SELECT 1")  # imports and first calls out of the figures
    return {
        name: _per_call_ns(session_state_find, sql)
        for name, sql in SITE_QUERIES.items()
    }


def first_read_us() -> dict[str, float]:
    """A text never seen before: the prefilter, then the parser if it asks."""
    from django_pgbouncer.guard import session_state_find
    from django_pgbouncer.guard.classify import statement_candidates

    def once(sql: str) -> None:
        statement_candidates.cache_clear()
        session_state_find(sql)

    out = {}
    for name, sql in SITE_QUERIES.items():
        runs = timeit.repeat(functools.partial(once, sql), number=200, repeat=5)
        out[name] = min(runs) / 200 * 1e6
    return out


def wrapper_ns() -> dict[str, float]:
    """The execute wrapper on a real connection, the query not sent."""
    from django.db import connections

    from django_pgbouncer.guard import SessionStateGuard

    # The wrapper itself, as Django's cursor hands it over (django.db.connection
    # is a proxy whose every attribute read costs more than the guard).
    connection = connections["default"]
    (guard,) = [
        w for w in connection.execute_wrappers if isinstance(w, SessionStateGuard)
    ]
    out = {}
    with connection.cursor() as cursor:
        context = {"connection": connection, "cursor": cursor}
        for name, sql in SITE_QUERIES.items():
            if name == "session (hazard)":
                continue  # it raises: a finding is not a query's cost

            def call(text: str) -> None:
                guard(lambda *args: None, text, (1, 2, 3), False, context)

            out[name] = _per_call_ns(call, sql)
    return out


def through_pgbouncer(rounds: int, queries: int) -> dict[str, Any]:
    import django

    from devstack.ephemeral import ephemeral_stack

    with ephemeral_stack("bench-guard-") as stack:
        os.environ.update(stack.site_env())
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        django.setup()
        timed = _rounds_time(rounds, queries)
        return {"through_pgbouncer_us": timed, "wrapper_ns": wrapper_ns()}


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
    guard.mode = GuardMode.RAISE
    return results


def share(result: dict[str, Any]) -> dict[str, float]:
    """The wrapper's cost per query over a query through PgBouncer (guard off)."""
    query_ns = statistics.median(result["through_pgbouncer_us"]["guard off"]) * 1e3
    return {name: ns / query_ns for name, ns in result["wrapper_ns"].items()}


def lines_render(result: dict[str, Any]) -> list[str]:
    rounds = result["through_pgbouncer_us"]
    lines = [
        "| what | cost |",
        "|---|--:|",
        *[
            f"| classifier, {name} (a new string each call) | {ns:,.0f} ns |"
            for name, ns in result["classifier_ns"].items()
        ],
        *[
            f"| classifier, {name}, first reading (cache emptied) | {us:,.1f} us |"
            for name, us in result["first_read_us"].items()
        ],
        *[
            f"| the execute wrapper, {name} | {ns:,.0f} ns |"
            for name, ns in result["wrapper_ns"].items()
        ],
        *[
            f"| a query through PgBouncer, {name} (median of {len(runs)}, "
            f"{min(runs):.1f}..{max(runs):.1f}) | {statistics.median(runs):.1f} us |"
            for name, runs in rounds.items()
        ],
    ]
    lines += [
        "",
        "The guard's share of a query through PgBouncer (the wrapper over the "
        "median query with the guard off):",
        "",
        *[f"- {name}: {100 * part:.2f}%" for name, part in share(result).items()],
    ]
    return lines


def _source() -> str:
    """The commit, and whether the guard's code and this file were as committed
    (other files may change while the guard is measured)."""
    from devstack.stack import PROJECT_DIR

    def git(*args: str) -> str:
        argv = ["git", "-C", str(PROJECT_DIR), *args]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", *_MEASURED)
    state = "with uncommitted changes" if changed else "as committed"
    return f"commit {commit}, the guard's code {state}"


def result_write(result: dict[str, Any], argv: list[str], load: float) -> None:
    from .stackinfo import machine_describe

    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join([".venv/bin/python -m bench.guard_cost", *argv])
    head = [
        "# The runtime guard's cost (bench.guard_cost)",
        "",
        f"Run: `{command}` on {date}; {_source()}; {machine_describe()}; "
        f"Python {sys.version.split()[0]}; PostgreSQL and PgBouncer (transaction "
        f"mode) from devstack.ephemeral. Load average at the start: {load:.2f} "
        "(other work on the machine slows both the guard and the query; the "
        "share compares the two from the same run).",
        "",
    ]
    data = json.dumps(result, sort_keys=True)
    tail = [
        "",
        "The figures (bench.guard_cost --json):",
        "",
        "```json",
        data,
        "```",
        "",
    ]
    RESULT.write_text("\n".join(head + lines_render(result) + tail))
    print(f"wrote {RESULT}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guard_cost")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    parser.add_argument("--write", action="store_true", help=f"into {RESULT.name}")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    result = {
        "classifier_ns": classifier_ns(),
        "first_read_us": first_read_us(),
        **through_pgbouncer(args.rounds, args.queries),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print("\n".join(lines_render(result)))
    if args.write:
        result_write(result, sys.argv[1:], load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
