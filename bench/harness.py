"""The load benchmark: seven ways to serve the site's pages, measured alike.

One private PostgreSQL + PgBouncer (devstack's Stack) is started once; each
configuration (bench.configs) starts its web server on it in turn, interleaved in
rounds, and wrk loads the list and a detail page at each client count. Also pgbench
direct versus through PgBouncer, and the runtime guard's cost (bench.guard_cost).
Results: bench/results/latest.{json,md,png} (--name for another name).

    .venv/bin/python -m bench.harness [--quick] [--rounds N] [--seconds S]
        [--clients 16,256,1000] [--pages list,detail] [--configs 1,3,6]
        [--variant '[BASE/]label:KEY=V,...'] [--set KEY=V] [--name NAME] [--render]

--variant measures a configuration (6 unless BASE) with variables changed, next to
the rest; --set changes a variable in every configuration (a proposed default,
e.g. GUNICORN_CMD_ARGS=--reuse-port); --render rebuilds NAME.md/.png from NAME.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from devstack.process import Child, port_pick, run_checked
from devstack.stack import APP_DB, PROJECT_DIR, Stack, StackSettings

from . import configs as cfg
from . import report
from .measure import (
    PeakBackends,
    cluster_cpu_seconds,
    connections_split,
    process_cpu_seconds,
    server_drain,
    wrk_run,
)
from .pgbench import pgbench_prepare, pgbench_rounds
from .stackinfo import (
    machine_describe,
    pool_size,
    server_connections_reset,
    versions_describe,
)
from .targets import targets_evaluate

RESULTS = Path(__file__).resolve().parent / "results"
SEED_POSTS = 200
WARMUP_SECONDS = 2
# configurations 1 and 5 open one PgBouncer client connection per request and
# runserver one thread per wrk connection: 1000 clients need more than the default 100.
PGBOUNCER_VARIABLES = {"MAX_CLIENT_CONN": "2000"}


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: int
    clients: tuple[int, ...]
    pages: tuple[str, ...]
    quick: bool
    only: tuple[str, ...] = ()
    variants: tuple[tuple[str, str, dict[str, str]], ...] = field(default=())
    # Variables set in every configuration (a proposed default, measured alike).
    everywhere: tuple[tuple[str, str], ...] = field(default=())
    name: str = "latest"  # results/<name>.{json,md,png}
    render_only: bool = False

    def estimate_minutes(self, configurations: int) -> float:
        per_run = self.seconds + WARMUP_SECONDS + 0.5
        runs = self.rounds * configurations * len(self.pages) * len(self.clients)
        return (runs * per_run + self.rounds * configurations * 4) / 60


def plan_parse(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench.harness")
    parser.add_argument("--quick", action="store_true", help="1 round, 16 clients")
    parser.add_argument("--rounds", type=int, help="default 3 (--quick: 1)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", default="16,256,1000")
    parser.add_argument("--pages", default="list,detail", help="list, detail or both")
    parser.add_argument("--configs", default="", help="keys to run, e.g. 1,3,6")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="a configuration (default 6) with variables changed: "
        "'[BASE/]label:KEY=VALUE,...'",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="KEY=VALUE for every configuration, e.g. GUNICORN_CMD_ARGS=--reuse-port",
    )
    parser.add_argument("--name", default="latest", help="results/NAME.{json,md,png}")
    parser.add_argument(
        "--render",
        action="store_true",
        help="rebuild results/NAME.{md,png} from results/NAME.json; no load",
    )
    args = parser.parse_args(argv)
    if not args.name.replace("-", "").replace("_", "").isalnum():
        parser.error("--name takes letters, digits, - and _")
    rounds = args.rounds or (1 if args.quick else 3)
    split = [item.partition("=") for item in args.set]
    if any(not key or not sep for key, sep, _ in split):
        parser.error("--set takes KEY=VALUE")
    everywhere = tuple((key, value) for key, _, value in split)
    clients = tuple(int(c) for c in args.clients.split(",") if c.strip())
    if rounds < 1 or args.seconds < 1 or not clients:
        parser.error("--rounds, --seconds and --clients need positive numbers")
    try:
        variants = tuple(cfg.variant_parse(v) for v in args.variant)
    except ValueError as error:
        parser.error(str(error))
    only = tuple(k.strip() for k in args.configs.split(",") if k.strip())
    pages = tuple(p.strip() for p in args.pages.split(",") if p.strip())
    if not pages or not set(pages) <= {"list", "detail"}:
        parser.error("--pages takes list, detail, or list,detail")
    pages = ("list",) if args.quick else pages
    return Plan(
        rounds=rounds,
        seconds=args.seconds,
        clients=(16,) if args.quick else clients,
        pages=pages,
        quick=args.quick,
        only=only,
        variants=variants,
        everywhere=everywhere,
        name=args.name,
        render_only=args.render,
    )


def nofile_raise(needed: int) -> int:
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
    return soft


def stack_make(root: Path) -> Stack:
    settings = StackSettings(
        root=root,
        postgres_port=port_pick(),
        pgbouncer_port=port_pick(),
        web_port=port_pick(),
        seed_posts=SEED_POSTS,
        pgbouncer_variables=PGBOUNCER_VARIABLES,
    )
    return Stack(settings, durable=False)


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
    with PeakBackends(superuser, APP_DB) as peak:
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
    """bench.guard_cost's two measurements, in a process of their own: they set
    up Django and start a stack of their own."""
    code = (
        "import json\n"
        "from bench.guard_cost import classifier_ns, through_pgbouncer\n"
        "print(json.dumps({'classifier_ns': classifier_ns(),"
        " 'through_pgbouncer_us': through_pgbouncer(5, 2000)}))\n"
    )
    env = {**cfg.environ_passthrough(os.environ), "PYTHONPATH": str(PROJECT_DIR)}
    out = run_checked([sys.executable, "-c", code], what="bench.guard_cost", env=env)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def context_describe(plan: Plan, stack: Stack, detail: str) -> dict[str, Any]:
    return {
        "command": shlex.join(
            [".venv/bin/python", "-m", "bench.harness", *sys.argv[1:]]
        ),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_describe(),
        "versions": versions_describe(stack),
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
    stack.start()
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
    verdicts = targets_evaluate(cells, pool=got.pool, quick=plan.quick)
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
        runs=[
            report.Run(**{**r, "split": tuple(r.get("split", ()))})
            for r in data["runs"]
        ],
        pool=data["pool"],
        context=data["context"],
        pgbench=data["pgbench"],
    )
    got.chosen = []
    for label, overrides in data["configurations"].items():
        key, _, name = label.partition(". ")
        got.chosen.append(cfg.Configuration(key, name, "", {}, overrides))
    return results_publish(plan, got, data["guard_cost"])


def main(argv: list[str] | None = None) -> int:
    plan = plan_parse(argv)
    if plan.render_only:
        print(render(plan))
        return 0
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    nofile_raise(3 * max(plan.clients) + 200)
    root = Path(tempfile.mkdtemp(prefix="bench-harness-"))
    root.chmod(0o755)  # the servers' account must reach it
    stack = stack_make(root)
    got = Measured()
    try:
        measure_all(plan, stack, got)
    except BaseException:
        partial = RESULTS / f"{plan.name}-partial.json"
        partial.write_text(json.dumps(report.as_json(got.runs, []), indent=2))
        print(f"failed: {len(got.runs)} runs kept in {partial}; logs in {root}")
        raise
    finally:
        stack.stop()
    shutil.rmtree(root, ignore_errors=True)
    guard = guard_measure() if not plan.quick else None
    print(results_publish(plan, got, guard))
    return 0


if __name__ == "__main__":
    sys.exit(main())
