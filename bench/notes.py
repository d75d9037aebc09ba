"""The prose of bench/README.md (bench.readme adds every figure from the JSON):
how to run the benchmarks, what each configuration is, and what each committed
result file measured, under which conditions.

A Note is tied to one run: to a result file's date (context["date"]), or to a
profile's first line. Describe a new run here before its figures are quoted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    run: str  # the date of the JSON run, or the first line of a profile
    text: str
    # Configurations of the run that measured the same thing under two labels.
    same: tuple[tuple[str, str], ...] = ()


RUNNING = [
    "- `make bench`: every configuration below, 3 rounds of 8 s (after a 2 s "
    "warm-up) at 16, 256 and 1000 clients on the list and a detail page, then "
    "pgbench and the guard's cost; about 25 minutes. It writes "
    "`results/latest.{json,md,png}` and then this file. Run it on an idle "
    "machine: anything else on the 2 cores is measured too.",
    "- `make bench-quick`: 1 round, 16 clients, list page, every configuration; "
    "writes `results/quick.*` (ignored by git). A smoke test of the harness: its "
    "numbers are too noisy to quote, and it never writes `latest.*`.",
    "- `.venv/bin/python -m bench.harness --name NAME [--configs 3,6] "
    "[--variant 'label:KEY=VALUE'] [--set KEY=VALUE]`: a proposal measured "
    "next to the configurations, into `results/NAME.*` (`latest` is only for the "
    "full run). What the removed bench/conn_lifetime.py compared (CONN_MAX_AGE=0, "
    "and 600 with and without Django's health check) is configurations 5 and 6 "
    "plus one variant: `--name conn-lifetime --configs 5,6 --clients 16 --pages "
    "list --variant 'health checks:CONN_HEALTH_CHECKS=1'`.",
    "- `.venv/bin/python -m bench.faults`: the five faults (a planned "
    "PostgreSQL restart through `manage.py pgbouncer_maintenance`, every backend "
    "terminated, PostgreSQL killed with SIGKILL and restarted, PgBouncer "
    "restarted, overload), each on a private site under 16 clients for 20 s with "
    "the fault 6 s in; about 4 minutes. It writes `results/faults.{json,md}` "
    "(`--only NAME,...` or another load prints the table and writes nothing). "
    "The faults and what must hold are devstack.faults's, which tests/faults "
    "asserts on.",
    "- `.venv/bin/python -m bench.fanout`: web tiers of 8, 64 and 256 threads "
    "(1, 2 and 4 gunicorn instances on ports of their own, as if on as many web "
    "nodes, a wrk each) against configurations 3, 4, 6 and 6 with gunicorn's "
    "reuse_port, 3 rounds of 10 s, interleaved; PostgreSQL's backends and their "
    "memory sampled meanwhile; about 20 minutes. It writes "
    "`results/fanout.{json,md,png}` (`--name NAME --rounds 1 --configs 6` for a "
    "smoke run elsewhere). `.venv/bin/python -m bench.capacity RATE PROCESSES "
    "THREADS` applies docs/capacity.md's model to its numbers.",
    "- `.venv/bin/python -m bench.readme`: this file again, from the result files.",
    "- `.venv/bin/python -m bench.guard_cost --write`: the runtime guard alone "
    "(the classifier on the site's queries, a first reading by the parser, the "
    "execute wrapper, and a query through PgBouncer with the guard on and off), "
    "and the guard's share of a query through PgBouncer; into "
    "`results/guard_cost.md`, with the command, date, commit and machine of the "
    "run (without `--write` it prints the table and writes nothing). "
    "docs/guard.md quotes that file.",
    "- `.venv/bin/python -m bench.profile_web` (py-spy on one configuration).",
    "",
    "Each run starts a private PostgreSQL and PgBouncer (devstack.ephemeral) on "
    "free loopback ports and deletes them after.",
]

CONFIGURATIONS = {
    "1": "the seed: `manage.py runserver` (DEBUG on), CONN_MAX_AGE=0 through "
    "PgBouncer: a new connection to PgBouncer per request.",
    "2": "gunicorn (config/gunicorn.py: 2 workers x 4 threads) straight to "
    "PostgreSQL, CONN_MAX_AGE=0: a new PostgreSQL backend per request.",
    "3": "gunicorn straight to PostgreSQL, CONN_MAX_AGE=600: persistent "
    "connections and no pooler.",
    "4": "gunicorn straight to PostgreSQL through Django's native psycopg pool "
    "(bench/settings_native_pool.py).",
    "5": "gunicorn through PgBouncer, CONN_MAX_AGE=0: a SCRAM login to PgBouncer "
    "per request.",
    "6": "ours, what `make run` and the Docker image use: gunicorn through "
    "PgBouncer, CONN_MAX_AGE=600, Django's health check off (django_pgbouncer "
    "checks the socket instead).",
    "7": "the ceiling: the same pages from rows held in memory (bench/ceiling.py), "
    "no database: what Django and gunicorn cost alone.",
}

# (what, first, second): the second configuration's req/s over the first's.
COMPARISONS = [
    ("connection lifetime through PgBouncer: CONN_MAX_AGE=0 -> 600", "5", "6"),
    ("a connection per request: direct -> through PgBouncer", "2", "5"),
    ("direct persistent -> ours", "3", "6"),
    ("native psycopg pool -> ours", "4", "6"),
    ("the seed -> ours", "1", "6"),
    ("the ceiling -> ours", "7", "6"),
]

_BEFORE = (
    "the site before a4275c1: the list page paginated with Django's Paginator (a "
    "COUNT(*) per request) and CONN_HEALTH_CHECKS=1 by default (a SELECT 1 "
    "before a request reuses a connection)"
)
_AFTER = (
    "the site after a4275c1 (no COUNT(*): the list page reads one row more than "
    "it shows; CONN_HEALTH_CHECKS=0 by default, django_pgbouncer checks the "
    "socket)"
)
_SAME = (
    " The variants named 'no health checks, count cached' measured nothing new: "
    "CONN_HEALTH_CHECKS=0 was already the default, and "
    "bench.settings_list_count_cached (since removed) only swapped the paginator "
    "of a list view that no longer had one. They are their base configuration "
    "measured again, which shows the noise of this machine (below)."
)

NOTES = {
    "latest": Note(
        "2026-11-24 21:58 UTC",
        "Measured on " + _AFTER + ". Result files did not yet record the commit: "
        "`git diff a4275c1 -- core config django_pgbouncer` shows what has changed "
        "since. The guard's cost was measured on the guard of that time and on "
        "bench.guard_cost's queries of that time (the list page's SELECT with "
        "LIMIT 20, and a COUNT(*) the site no longer sends).",
    ),
    "explore-queries": Note(
        "2026-11-24 21:15 UTC",
        "How the defaults were chosen. Configurations 3, 6 and 7 and variants, "
        "list page, 16 clients, gunicorn's --reuse-port in every configuration, on "
        + _BEFORE
        + ". 6a: without the health check; 6b, 6c, 3d, 3e: with "
        "bench.list_count_cached, a prototype (since removed) that cached the "
        "paginator's count for 5 s per process. a4275c1 then dropped both: the "
        "COUNT(*) altogether, the health check for a socket check. Its variants' "
        "code is gone, so it cannot be run again as it was.",
    ),
    "full-default": Note(
        "2026-11-24 21:21 UTC",
        "All seven configurations, 10 s per run, on "
        + _BEFORE
        + " (configurations 3 and 6 ran the health check; 4 forces it off). The "
        "'before' of latest.json: compare the CPU PgBouncer of configuration 6 in "
        "results/full-default.md and results/latest.md, where the COUNT(*) and the "
        "SELECT 1 were round trips through it.",
    ),
    "proposals": Note(
        "2026-11-24 22:30 UTC",
        "Proposals on " + _AFTER + ", configurations 3, 6 and 7, list page, 16 "
        "and 1000 clients: gunicorn's --reuse-port (6a, 7g) and --keep-alive 0 "
        "(6b, 7h). Neither became a default." + _SAME,
        same=(("6", "6c"), ("6a", "6d"), ("6b", "6e"), ("3", "3f")),
    ),
    "proposals-reuse-port": Note(
        "2026-11-24 22:49 UTC",
        "--reuse-port in every configuration (1, 3, 6, 7), 5 rounds, list page, 16 "
        "clients, on " + _AFTER + "." + _SAME,
        same=(("6", "6a"), ("3", "3b")),
    ),
    "faults": Note(
        "2026-11-25 16:55 UTC",
        "The five faults on commit 7ede0d3, the machine otherwise idle: the site "
        "with config.middleware.SiteBackendLossMiddleware (GET, HEAD and a POST "
        "that had not written run again once after a lost backend, waiting up to "
        "5 s for a query to reach PostgreSQL), gunicorn's keep-alive 30 s, the "
        "renderer's server_login_retry 2 s, query_wait_timeout 10 s (the overload "
        "fault sets 2 s and a pool of 1). The planned restart is `manage.py "
        "pgbouncer_maintenance -- pg_ctl restart`; the terminations (twice, 1.5 s "
        "apart) and the SIGKILL land while requests wait on a lock held on the "
        "posts table, so they meet requests in flight; PostgreSQL is started again "
        "0.5 s after the kill by devstack's restart (what make run's monitor "
        "does). The PgBouncer restart is devstack's online restart (pgbouncer -R: "
        "the new process takes over the old one's sockets, client and server "
        "connections included, through its Unix socket). Failures per fault are "
        "in the JSON (statuses, the instants, what the servers said).",
    ),
    "processes": Note(
        "2026-11-25 16:46 UTC",
        "bench.processes: one PgBouncer process (6.) against 2 on one port with "
        "so_reuseport (6p., devstack.pgbouncers), each before the same "
        "PostgreSQL, with make run's gunicorn (2 workers x 4 threads) on the "
        "detail page at 64 clients and pgbench -S at 16 clients, interleaved in 5 "
        "rounds. The machine was not idle: other work held its load average "
        "between 20 and 7 during the run. pgbench -S through 2 processes beat "
        "one in each of the 5 rounds, 11,087 against 9,707 TPS in the median "
        "(0.70x and 0.61x of direct, 15,945): a PgBouncer process runs on one "
        "core. The web bench went the other way in each round, 393 against 426 "
        "req/s: with 8 web threads PgBouncer is not what limits the site, and "
        "a second process takes CPU from gunicorn on 2 cores. No request "
        "failed either way. Each process keeps a pool of its own: up to 2 x "
        "default_pool_size backends (peak 16 against 14 here).",
    ),
    "fanout": Note(
        "2026-11-25 17:23 UTC",
        "Configurations 3 (direct, persistent), 4 (Django's native pool, "
        "max_size = a process's threads) and 6 (ours, make run's defaults: "
        "PgBouncer's pool 20, max_client_conn 600, gunicorn's keep-alive 30 s), "
        "and two proposals for 6 (6a: gunicorn's reuse_port; 6b: keep-alive 30 s, "
        "which since commit 26c253e is 6 itself, so 6 and 6b measure the same), "
        "on commit ae91a7e, the machine otherwise idle. PostgreSQL allows the "
        "site's role 97 connections: at 256 threads the direct connections "
        "beyond them were refused ('too many clients', the site's 500s: "
        "non-2xx), and the native pool's threads waited for the 96 connections "
        "it could open. An earlier run on a loaded machine (not kept) showed "
        "'read' failures, wrk's own: gunicorn's old 2 s keep-alive closed a "
        "connection as a CPU-starved wrk sent its next request on it; with 30 s "
        "there were none. reuse_port (6a) has no more req/s than 6: not a "
        "default.",
    ),
    "profile-6-gil.txt": Note(
        "6. ours: make run's defaults, PgBouncer {'GUNICORN_CMD_ARGS': "
        "'--reuse-port'}, list page, 16 clients, py-spy --gil",
        "configuration 6 on " + _BEFORE + ": the samples through the paginator's "
        "count and the health check are what a4275c1 removed.",
    ),
    "profile-7-gil.txt": Note(
        "7. ceiling: rows in memory, no database , list page, 16 clients, py-spy --gil",
        "the ceiling, before a4275c1 (no --reuse-port): where a worker's time "
        "goes with no database at all (mostly template rendering).",
    ),
}
