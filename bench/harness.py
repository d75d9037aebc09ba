"""The load benchmark: seven ways to serve the site's pages, measured alike.

One private PostgreSQL + PgBouncer (devstack.ephemeral) is started once; each
configuration (bench.configs) starts its web server on it in turn, interleaved in
rounds, and wrk loads the list and a detail page at each client count. Also pgbench
direct versus through PgBouncer, and the runtime guard's cost (bench.guard_cost).
Results: bench/results/latest.{json,md,png}; --quick writes quick.* (bench.plan).
bench/README.md is made from the result files by bench.readme.

    .venv/bin/python -m bench.harness [--quick] [--rounds N] [--seconds S]
        [--clients 16,256,1000] [--pages list,detail] [--configs 1,3,6]
        [--variant '[BASE/]label:KEY=V,...'] [--set KEY=V] [--name NAME] [--render]

--variant measures a configuration (6 unless BASE) with variables changed, next to
the rest; --set changes a variable in every configuration (a proposed default,
e.g. GUNICORN_CMD_ARGS=--reuse-port); --render rebuilds NAME.md/.png from NAME.json.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from devstack.ephemeral import ephemeral_stack
from devstack.process import Child, run_checked
from devstack.stack import APP_DB, PROJECT_DIR, Stack

from . import configs as cfg
from . import report
from .measure import (
    WRK,
    cluster_cpu_seconds,
    connections_split,
    process_cpu_seconds,
    server_drain,
    wrk_run,
)
from .pgbench import pgbench_prepare, pgbench_rounds
from .plan import LATEST, WARMUP_SECONDS, Plan, plan_parse
from .sampler import BackendSampler
from .stackinfo import (
    machine_describe,
    pool_size,
    server_connections_reset,
    source_describe,
    versions_describe,
)
from .targets import targets_evaluate

RESULTS = Path(__file__).resolve().parent / "results"
SEED_POSTS = 200
# configurations 1 and 5 open one PgBouncer client connection per request and
# runserver one thread per wrk connection: 1000 clients need more than the default 100.
PGBOUNCER_VARIABLES = {"MAX_CLIENT_CONN": "2000"}


def nofile_raise(needed: int) -> None:
    """Raise the open-files limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < needed:
        print(
            f"warning: the open-files limit is {soft}, under the {needed} that "
            f"{needed // 3} clients need; raise it (ulimit -Hn) as root",
            file=sys.stderr,
        )


def bench_stack(prefix: str) -> AbstractContextManager[Stack]:
    """A started stack of its own (devstack.ephemeral), gone after the block
    unless the run fails: then its server logs stay for a look."""
    return ephemeral_stack(
        prefix,
        pgbouncer_variables=PGBOUNCER_VARIABLES,
        seed_posts=SEED_POSTS,
        keep_on_error=True,
    )


def site_prepare(stack: Stack, env: dict[str, str]) -> str:
    """Migrate over the direct URL, seed the posts; the detail page's path."""
    manage = [sys.executable, str(PROJECT_DIR / "manage.py")]
    run_checked([*manage, "migrate", "--noinput", "-v0"], what="migrate", env=env)
    count = str(SEED_POSTS)
    run_checked([*manage, "seed_posts", "--count", count], what="seed", env=env)
    with psycopg.connect(stack.direct_url.url()) as conn:
        row = conn.execute(
            "SELECT id FROM core_post ORDER BY id LIMIT 1 OFFSET %s", [SEED_POSTS // 2]
        ).fetchone()
    if row is None:
        raise RuntimeError("the seed made no posts")
    return f"/posts/{row[0]}/"


def _pid(child: Child | None) -> int:
    if child is None or child.process is None:
        raise RuntimeError("a server of the stack is not running")
    return child.process.pid


def run_measure(
    stack: Stack, config: cfg.Configuration, page: tuple[str, str], clients: int,
    *, seconds: int, round_no: int,
) -> report.Run:  # fmt: skip
    url = stack.web_url + page[1]
    s = stack.settings
    wrk_run(url, clients=clients, seconds=WARMUP_SECONDS)
    # The warm-up's queued requests would eat the run's time: gunicorn answers
    # them after wrk has gone.
    server_drain(s.web_host, s.web_port, page[1])
    bouncer, postmaster = _pid(stack.pgbouncer.child), _pid(stack.postgres.child)
    cpu = process_cpu_seconds(bouncer), cluster_cpu_seconds(postmaster)
    superuser = stack.postgres.config.superuser_url().url()
    split = connections_split(s.web_port, after=min(1.0, seconds / 2))
    with BackendSampler(superuser, APP_DB) as peak:
        result = wrk_run(url, clients=clients, seconds=seconds)
    cpu_after = process_cpu_seconds(bouncer), cluster_cpu_seconds(postmaster)
    server_drain(s.web_host, s.web_port, page[1])  # the next run starts idle
    return report.Run(
        config=config.label,
        page=page[0],
        clients=clients,
        round=round_no,
        rps=round(result.rps, 1),
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        non_2xx=result.non_2xx,
        socket_errors=result.socket_errors,
        requests=result.requests,
        peak_pg=peak.peak,
        cpu_pgbouncer_s=round(cpu_after[0] - cpu[0], 2),
        cpu_postgres_s=round(cpu_after[1] - cpu[1], 2),
        split=tuple(split),
    )


def _progress(run: report.Run) -> None:
    p99 = f"{run.p99_ms:.0f} ms" if run.p99_ms is not None else "-"
    print(
        f"  round {run.round} | {run.config[:40]:40} | {run.page:6} | "
        f"c{run.clients:<4} | {run.rps:8.0f} req/s | p99 {p99:>8} | "
        f"errors {run.errors:6} | peak PG {run.peak_pg:3} | "
        f"split {'/'.join(map(str, run.split))}",
        file=sys.stderr,
        flush=True,
    )


def web_rounds(
    stack: Stack,
    configurations: list[cfg.Configuration],
    pages: dict[str, str],
    plan: Plan,
    runs: list[report.Run],
) -> None:
    """Every configuration in turn, round after round; appends to `runs`."""
    for round_no in range(1, plan.rounds + 1):
        for config in configurations:
            server_connections_reset(stack)
            web = cfg.server_child(stack, config)
            try:
                web.start(timeout=60)
                for page in pages.items():
                    for clients in plan.clients:
                        run = run_measure(
                            stack, config, page, clients,
                            seconds=plan.seconds, round_no=round_no,
                        )  # fmt: skip
                        _progress(run)
                        runs.append(run)
            finally:
                web.stop()


def guard_measure() -> dict[str, Any]:
    """bench.guard_cost's two measurements, in a process of their own: it sets up
    Django and starts a stack of its own."""
    env = {**cfg.environ_passthrough(os.environ), "PYTHONPATH": str(PROJECT_DIR)}
    argv = [sys.executable, "-m", "bench.guard_cost", "--json"]
    out = run_checked(argv, what="bench.guard_cost", env=env)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def context_describe(plan: Plan, stack: Stack, detail: str) -> dict[str, Any]:
    return {
        "command": shlex.join(
            [".venv/bin/python", "-m", "bench.harness", *sys.argv[1:]]
        ),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": source_describe(),
        "machine": machine_describe(),
        "versions": versions_describe(stack),
        "quick": plan.quick,
        "seconds": plan.seconds,
        "rounds": plan.rounds,
        "clients": list(plan.clients),
        "detail_path": detail,
        "pgbouncer_variables": PGBOUNCER_VARIABLES,
        "set_everywhere": dict(plan.everywhere),
    }


def configurations_pick(stack: Stack, plan: Plan) -> list[cfg.Configuration]:
    chosen = cfg.configurations(stack, os.environ, dict(plan.everywhere))
    chosen += cfg.variants(chosen, list(plan.variants))
    if plan.only:
        # Variants ("6a", ...) always run: they are what was asked for.
        chosen = [c for c in chosen if c.key in plan.only or len(c.key) > 1]
    return chosen


def results_write(
    name: str, data: dict[str, Any], md: str, cells: list[report.Summary]
) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(md)
    problem = report.chart(cells, RESULTS / f"{name}.png")
    if problem:
        print(problem, file=sys.stderr)


@dataclass
class Measured:
    """What one harness run gathered; filled as it goes, so a failure keeps it."""

    runs: list[report.Run] = field(default_factory=list)
    chosen: list[cfg.Configuration] = field(default_factory=list)
    pool: dict[str, int] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    pgbench: dict[str, list[dict[str, Any]]] | None = None


def measure_all(plan: Plan, stack: Stack, got: Measured) -> None:
    detail = site_prepare(stack, cfg.bench_env(stack, os.environ))
    pages = {"list": "/", "detail": detail}
    pages = {name: pages[name] for name in plan.pages}
    got.chosen = configurations_pick(stack, plan)
    print(
        f"{len(got.chosen)} configurations, about "
        f"{plan.estimate_minutes(len(got.chosen)):.0f} min of load ...",
        file=sys.stderr,
    )
    got.pool = pool_size(stack)
    got.context = context_describe(plan, stack, detail)
    got.context["pool"] = got.pool
    web_rounds(stack, got.chosen, pages, plan, got.runs)
    if not plan.quick:
        pgbench_prepare(stack)
        got.pgbench = pgbench_rounds(stack, rounds=plan.rounds, seconds=plan.seconds)


def results_publish(plan: Plan, got: Measured, guard: dict[str, Any] | None) -> str:
    cells = report.summaries(got.runs)
    quick = bool(got.context.get("quick", plan.quick))
    verdicts = targets_evaluate(cells, pool=got.pool, quick=quick)
    md = report.markdown(
        cells=cells,
        targets=verdicts,
        pgbench=got.pgbench,
        guard=guard,
        context=got.context,
    )
    data = {
        "context": got.context,
        "pool": got.pool,
        "configurations": {c.label: dict(c.overrides) for c in got.chosen},
        **report.as_json(got.runs, cells),
        "pgbench": got.pgbench,
        "guard_cost": guard,
        "targets": verdicts,
    }
    results_write(plan.name, data, md, cells)
    return md


def render(plan: Plan) -> str:
    """The tables and chart again from a saved run (after a report change)."""
    data = json.loads((RESULTS / f"{plan.name}.json").read_text())
    data["context"].setdefault("pool", data["pool"])
    got = Measured(
        runs=report.runs_load(data),
        pool=data["pool"],
        context=data["context"],
        pgbench=data["pgbench"],
    )
    for label, overrides in data["configurations"].items():
        key, _, name = label.partition(". ")
        got.chosen.append(cfg.Configuration(key, name, "", {}, overrides))
    return results_publish(plan, got, data["guard_cost"])


def load_run(plan: Plan) -> Measured:
    """Start a stack of its own, measure, stop it; on failure keep what was
    measured in NAME-partial.json."""
    got = Measured()
    try:
        with bench_stack("bench-harness-") as stack:
            measure_all(plan, stack, got)
    except BaseException:
        partial = RESULTS / f"{plan.name}-partial.json"
        partial.write_text(json.dumps(report.as_json(got.runs, []), indent=2))
        print(f"failed: {len(got.runs)} runs kept in {partial}", file=sys.stderr)
        raise
    return got


def main(argv: list[str] | None = None) -> int:
    plan = plan_parse(argv)
    if plan.render_only:
        print(render(plan))
        return 0
    if not shutil.which(WRK):
        sys.exit(f"{WRK} is not installed: apt-get install wrk (make bootstrap-dev)")
    nofile_raise(3 * max(plan.clients) + 200)
    got = load_run(plan)
    guard = guard_measure() if not plan.quick else None
    print(results_publish(plan, got, guard))
    if plan.name == LATEST:
        print("bench/README.md is made from it by .venv/bin/python -m bench.readme")
    return 0


if __name__ == "__main__":
    sys.exit(main())
