"""Several PgBouncer processes on one port (devstack.pgbouncers) against one:
pgbench -S and the web bench (gunicorn as `make run` has it, wrk on the detail
page) through 1 and through N processes, interleaved in rounds, in front of one
PostgreSQL. pgbench straight to PostgreSQL runs beside them as the reference.

    .venv/bin/python -m bench.processes [--processes 2] [--rounds 3]
        [--seconds 10] [--clients 64] [--name processes]

Writes results/NAME.{json,md} in bench.harness's format (bench.readme lists it
with the other result files).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from devstack.ephemeral import scratch_dir
from devstack.pgbouncer import PgBouncerSetup
from devstack.pgbouncers import PgBouncers
from devstack.process import Account, port_pick
from devstack.stack import APP_DB, Stack, StackSettings, run_env, web_child
from django_pgbouncer.observe import console_command

from . import configs as cfg
from . import report
from .harness import PGBOUNCER_VARIABLES, RESULTS, SEED_POSTS, site_prepare
from .measure import (
    cluster_cpu_seconds,
    process_cpu_seconds,
    server_drain,
    wrk_run,
)
from .pgbench import (
    CLIENTS,
    PGBENCH_DB,
    THREADS,
    pgbench_env,
    pgbench_parse,
    pgbench_prepare,
    pgbench_run,
)
from .plan import WARMUP_SECONDS
from .sampler import BackendSampler
from .stackinfo import machine_describe, pool_size, source_describe, versions_describe

__all__ = ["Plan", "Way", "main", "plan_parse"]


@dataclass(frozen=True)
class Plan:
    processes: int = 2
    rounds: int = 3
    seconds: int = 10
    clients: int = 64
    name: str = "processes"


def plan_parse(argv: Sequence[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench.processes")
    parser.add_argument("--processes", type=int, default=Plan.processes)
    parser.add_argument("--rounds", type=int, default=Plan.rounds)
    parser.add_argument("--seconds", type=int, default=Plan.seconds)
    parser.add_argument("--clients", type=int, default=Plan.clients)
    parser.add_argument("--name", default=Plan.name)
    args = parser.parse_args(argv)
    if args.processes < 2:
        parser.error("--processes: at least 2 (1 is what they are compared with)")
    for name in ("rounds", "seconds", "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: at least 1")
    return Plan(args.processes, args.rounds, args.seconds, args.clients, args.name)


@dataclass(frozen=True)
class Way:
    """PgBouncer as one way to reach PostgreSQL: its processes and consoles."""

    label: str
    bouncers: PgBouncers
    maintenance: list[str]  # each process's console, as a user that may RECONNECT

    @property
    def port(self) -> int:
        return self.bouncers.config.port

    def pids(self) -> list[int]:
        return [c.pid for c in self.bouncers.children if c and c.pid]

    def servers_close(self) -> None:
        """Close each process's idle server connections, so that a run's peak of
        PostgreSQL backends is its own."""
        for url in self.maintenance:
            console_command(url, "RECONNECT", APP_DB, variable="maintenance URL")


def way_of(stack: Stack, label: str, bouncers: PgBouncers) -> Way:
    url = stack.maintenance_console_url.with_(port=bouncers.config.port)
    return Way(label, bouncers, [url.with_(host=a).url() for a in bouncers.addresses()])


def one_process(stack: Stack) -> PgBouncers:
    """A single PgBouncer with the stack's variables, on a port of its own, with
    the stack's userlist.txt (one verifier per role)."""
    workdir = stack.settings.root / "pgbouncer-one"
    workdir.mkdir(mode=0o700)
    shutil.copy(stack.pgbouncer.config.workdir / "userlist.txt", workdir)
    stack.account.own(workdir, *workdir.iterdir())
    config = stack.pgbouncer.config
    bouncers = PgBouncers(
        PgBouncerSetup(workdir, port_pick(), config.variables, account=stack.account)
    )
    bouncers.start()
    return bouncers


def web_measure(
    stack: Stack, way: Way, path: str, plan: Plan, round_no: int
) -> report.Run:
    url, s = stack.web_url + path, stack.settings
    wrk_run(url, clients=plan.clients, seconds=WARMUP_SECONDS)
    server_drain(s.web_host, s.web_port, path)
    postmaster = stack.postgres.child.pid if stack.postgres.child else 0
    assert postmaster, "PostgreSQL is not running"
    cpu = sum(map(process_cpu_seconds, way.pids())), cluster_cpu_seconds(postmaster)
    superuser = stack.postgres.config.superuser_url().url()
    with BackendSampler(superuser, APP_DB) as peak:
        result = wrk_run(url, clients=plan.clients, seconds=plan.seconds)
    after = sum(map(process_cpu_seconds, way.pids())), cluster_cpu_seconds(postmaster)
    server_drain(s.web_host, s.web_port, path)
    return report.Run(
        config=way.label, page="detail", clients=plan.clients, round=round_no,
        rps=round(result.rps, 1), p50_ms=result.p50_ms, p99_ms=result.p99_ms,
        errors=result.errors, non_2xx=result.non_2xx,
        socket_errors=result.socket_errors, requests=result.requests,
        peak_pg=peak.peak, cpu_pgbouncer_s=round(after[0] - cpu[0], 2),
        cpu_postgres_s=round(after[1] - cpu[1], 2),
    )  # fmt: skip


def pgbench_once(stack: Stack, port: int, seconds: int) -> dict[str, Any]:
    app = stack.direct_url
    env = pgbench_env(
        host=app.host, port=port, user=app.user, password=app.password, db=PGBENCH_DB
    )
    # -n: the site's role may not vacuum the superuser's tables.
    args = ["-S", "-n", f"-c{CLIENTS}", f"-j{THREADS}", f"-T{seconds}"]
    out = pgbench_run(stack.postgres.bindir / "pgbench", env, args, seconds=seconds)
    parsed = pgbench_parse(out)
    return {"tps": parsed.tps, "latency_ms": parsed.latency_ms, "failed": parsed.failed}


def rounds_run(
    stack: Stack, ways: list[Way], detail: str, plan: Plan
) -> tuple[list[report.Run], dict[str, list[dict[str, Any]]]]:
    """Each way in turn, round after round: the web bench, then pgbench."""
    runs: list[report.Run] = []
    pgbench: dict[str, list[dict[str, Any]]] = {"direct": []}
    pgbench |= {f"through {w.label}": [] for w in ways}
    for round_no in range(1, plan.rounds + 1):
        for way in ways:
            way.servers_close()
            env = {
                **run_env(stack, cfg.environ_passthrough(os.environ)),
                "DATABASE_URL": stack.direct_url.with_(port=way.port).url(),
            }
            web = web_child(stack, env, account=Account())
            web.start(timeout=60)
            try:
                run = web_measure(stack, way, detail, plan, round_no)
            finally:
                web.stop()
            runs.append(run)
            print(f"  round {round_no} | {way.label} | {run.rps:.0f} req/s | "
                  f"errors {run.errors}", file=sys.stderr, flush=True)  # fmt: skip
        pgbench["direct"].append(
            pgbench_once(stack, stack.settings.postgres_port, plan.seconds)
        )
        for way in ways:
            pgbench[f"through {way.label}"].append(
                pgbench_once(stack, way.port, plan.seconds)
            )
    return runs, pgbench


def context_of(stack: Stack, plan: Plan, detail: str) -> dict[str, Any]:
    return {
        "command": shlex.join([".venv/bin/python", "-m", "bench.processes",
                               *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": source_describe(),
        "machine": machine_describe(),
        "versions": versions_describe(stack),
        "quick": False,
        "seconds": plan.seconds,
        "rounds": plan.rounds,
        "clients": [plan.clients],
        "detail_path": detail,
        "pgbouncer_variables": PGBOUNCER_VARIABLES,
        "set_everywhere": {},
        "processes": plan.processes,
    }  # fmt: skip


def results_write(
    plan: Plan, context: dict[str, Any], ways: list[Way], got: tuple[Any, Any]
) -> str:
    runs, pgbench = got
    cells = report.summaries(runs)
    targets = [f"none: {len(ways)} ways to PgBouncer compared, side by side"]
    md = report.markdown(
        cells=cells, targets=targets, pgbench=pgbench, guard=None, context=context
    )
    data = {
        "context": context,
        "pool": context["pool"],
        "configurations": {w.label: {} for w in ways},
        **report.as_json(runs, cells),
        "pgbench": pgbench,
        "guard_cost": None,
        "targets": targets,
    }
    (RESULTS / f"{plan.name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{plan.name}.md").write_text(md)
    return md


def main(argv: Sequence[str] | None = None) -> int:
    plan = plan_parse(argv)
    root = scratch_dir("bench-processes-")
    settings = StackSettings(
        root=root, postgres_port=port_pick(), pgbouncer_port=port_pick(),
        web_port=port_pick(), seed_posts=SEED_POSTS,
        pgbouncer_variables=PGBOUNCER_VARIABLES,
        pgbouncer_processes=plan.processes,
    )  # fmt: skip
    stack = Stack(settings, durable=False)
    one: PgBouncers | None = None
    try:
        stack.start()
        one = one_process(stack)
        ways = [
            way_of(stack, "6. 1 PgBouncer process", one),
            way_of(stack, f"6p. {plan.processes} PgBouncer processes", stack.pgbouncer),
        ]
        detail = site_prepare(stack, cfg.bench_env(stack, os.environ))
        pgbench_prepare(stack)
        context = context_of(stack, plan, detail)
        context["pool"] = pool_size(stack)
        got = rounds_run(stack, ways, detail, plan)
        print(results_write(plan, context, ways, got))
    finally:
        if one is not None:
            one.stop()
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
