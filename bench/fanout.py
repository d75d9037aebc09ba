"""The fan-out benchmark: web tiers of growing size against PostgreSQL, straight
(persistent connections), through Django's native pool, and through PgBouncer.

One private PostgreSQL + PgBouncer (devstack.ephemeral) with the renderer's
defaults is started once. For each configuration and tier, each of the tier's
nodes is a gunicorn instance of its own (devstack.stack.web_child, on its own
port, as if on its own web node) and gets a wrk of its own; PostgreSQL's client
backends and their memory are sampled meanwhile. Configurations and tiers are
interleaved, round after round.

    .venv/bin/python -m bench.fanout [--rounds 3] [--seconds 10] [--name fanout]
        [--configs 3,4,6,6a,6b] [--tiers 8,64,256] [--render]

Results: bench/results/NAME.{json,md,png}; bench.readme quotes fanout.*.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import http.client
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.ephemeral import ephemeral_stack
from devstack.process import Child, port_pick
from devstack.stack import APP_DB, Stack
from django_pgbouncer.observe import console_show

from . import configs as cfg
from .fanout_report import (
    NAME,
    TIERS,
    FanRun,
    Tier,
    as_json,
    cells_of,
    chart,
    markdown,
)
from .fanout_report import runs_load as fan_runs_load
from .harness import SEED_POSTS, nofile_raise, site_prepare
from .measure import WRK, WRK_TIMEOUT, WrkResult, server_drain, wrk_parse
from .plan import WARMUP_SECONDS
from .sampler import BackendSampler, max_connections
from .stackinfo import (
    machine_describe,
    pool_size,
    server_connections_reset,
    source_describe,
    versions_describe,
)
from .targets import fan_targets_evaluate

RESULTS = Path(__file__).resolve().parent / "results"
# Direct persistent, Django's native pool, ours, and two proposals for ours,
# measured alike: gunicorn's reuse_port (results/proposals*.md), and a keep-alive
# longer than its default 2 s (a starved client's next request on a kept
# connection can cross gunicorn closing it as idle: wrk counts a read error).
CONFIGS = ("3", "4", "6", "6a", "6b")
VARIANTS = [
    ("6", "reuse_port", {"GUNICORN_CMD_ARGS": "--reuse-port"}),
    ("6", "keep-alive 30 s", {"GUNICORN_CMD_ARGS": "--keep-alive 30"}),
]


@dataclass(frozen=True)
class FanPlan:
    rounds: int
    seconds: int
    name: str
    configs: tuple[str, ...]
    render_only: bool
    tiers: tuple[Tier, ...] = TIERS


def fan_plan_parse(argv: Sequence[str] | None) -> FanPlan:
    parser = argparse.ArgumentParser(prog="bench.fanout", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--render", action="store_true")
    parser.add_argument(
        "--tiers",
        default=",".join(str(t.threads) for t in TIERS),
        help="the tiers to load, by their threads",
    )
    args = parser.parse_args(argv)
    configs = tuple(c.strip() for c in args.configs.split(",") if c.strip())
    if args.rounds < 1 or not 1 <= args.seconds <= 60:
        parser.error("--rounds takes 1 or more, --seconds 1 to 60")
    if not configs or not set(configs) <= set(CONFIGS):
        parser.error(f"--configs takes some of {','.join(CONFIGS)}")
    if not args.name.replace("-", "").replace("_", "").isalnum():
        parser.error("--name takes letters, digits, - and _")
    by_threads = {str(t.threads): t for t in TIERS}
    wanted = [t.strip() for t in args.tiers.split(",") if t.strip()]
    if not wanted or not set(wanted) <= set(by_threads):
        parser.error(f"--tiers takes some of {','.join(by_threads)}")
    tiers = tuple(by_threads[t] for t in wanted)
    narrowed = args.rounds < 3 or configs != CONFIGS or tiers != TIERS
    if narrowed and args.name == NAME and not args.render:
        parser.error(f"results/{NAME}.* is the full run: name a smaller one --name")
    return FanPlan(args.rounds, args.seconds, args.name, configs, args.render, tiers)


def fan_configurations(stack: Stack, keys: Sequence[str]) -> list[cfg.Configuration]:
    chosen = cfg.configurations(stack, os.environ)
    chosen += cfg.variants(chosen, VARIANTS)
    return [c for c in chosen if c.key in keys]


def tier_env(config: cfg.Configuration, tier: Tier) -> cfg.Configuration:
    env = {
        **config.env,
        "WEB_CONCURRENCY": str(tier.workers),
        "GUNICORN_THREADS": str(tier.threads_per_process),
    }
    return dataclasses.replace(config, env=env)


def nodes_start(stack: Stack, config: cfg.Configuration, tier: Tier) -> list[Child]:
    """The tier's gunicorn instances, each on a port and in a folder of its own
    (its log, its metrics), started together."""
    children = []
    for i in range(tier.nodes):
        node = copy.copy(stack)
        node.settings = dataclasses.replace(
            stack.settings, root=stack.settings.root / f"node{i}", web_port=port_pick()
        )
        children.append(cfg.server_child(node, tier_env(config, tier)))
    try:
        with ThreadPoolExecutor(len(children)) as pool:
            list(pool.map(lambda child: child.start(timeout=90), children))
    except BaseException:
        nodes_stop(children)
        raise
    return children


def nodes_stop(children: Sequence[Child]) -> None:
    with ThreadPoolExecutor(len(children)) as pool:
        list(pool.map(lambda child: child.stop(), children))


def _url(child: Child, path: str) -> str:
    url = f"http://{child.host}:{child.port}{path}"
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"benchmarks target 127.0.0.1 only, not {url}")
    return url


_SOCKETS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)


def socket_errors_parse(out: str) -> dict[str, int]:
    """wrk's socket errors by kind (none printed: none happened)."""
    found = _SOCKETS.search(out)
    counts = [int(g) for g in found.groups()] if found else [0, 0, 0, 0]
    return dict(zip(("connect", "read", "write", "timeout"), counts, strict=True))


def wrk_each(
    urls: Sequence[str], *, clients: int, seconds: int
) -> list[tuple[WrkResult, dict[str, int]]]:
    """One wrk per URL at once (a thread each), `clients` connections each; its
    numbers and its socket errors by kind."""
    argv = [WRK, "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", WRK_TIMEOUT]
    procs = [
        subprocess.Popen(
            [*argv, "--latency", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {err}")
        results.append((wrk_parse(out), socket_errors_parse(out)))
    return results


def _xact_totals(stack: Stack) -> tuple[int, int]:
    """PgBouncer's transactions on the site's database so far, and their time (us)."""
    for stat in console_show(stack.admin_console_url.url(), "STATS"):
        if getattr(stat, "database", "") == APP_DB:
            return int(stat.total_xact_count), int(stat.total_xact_time)
    return 0, 0


def xacts_per_request(stack: Stack, child: Child, path: str, count: int = 20) -> float:
    """PgBouncer's transactions per request, from `count` requests one after
    another on an idle tier: under load, the requests still queued when wrk
    stops are served (and counted by PgBouncer) after wrk has stopped counting.
    It waits until PgBouncer counts no transaction for half a second, so what
    the warm-up left queued is not counted either."""
    before, deadline = _xact_totals(stack)[0], time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _xact_totals(stack)[0]
        if now == before:
            break
        before = now
    for _ in range(count):
        conn = http.client.HTTPConnection(child.host, child.port, timeout=30)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
        finally:
            conn.close()
    return round((_xact_totals(stack)[0] - before) / count, 3)


def _drain(children: Sequence[Child], path: str) -> None:
    for child in children:
        server_drain(child.host, child.port, path)


def point_measure(
    stack: Stack, config: cfg.Configuration, tier: Tier, path: str,
    *, seconds: int, round_no: int,
) -> FanRun:  # fmt: skip
    pooled = config.env.get("DATABASE_URL") == stack.pooled_url.url()
    server_connections_reset(stack)
    superuser = stack.postgres.config.superuser_url().url()
    sampler = BackendSampler(superuser, APP_DB)
    sampler.open()
    children = nodes_start(stack, config, tier)
    try:
        urls = [_url(child, path) for child in children]
        clients = tier.clients // tier.nodes
        wrk_each(urls, clients=clients, seconds=WARMUP_SECONDS)
        _drain(children, path)
        per_request = xacts_per_request(stack, children[0], path) if pooled else None
        before = _xact_totals(stack) if pooled else (0, 0)
        with sampler as sampled:
            measured = wrk_each(urls, clients=clients, seconds=seconds)
        after = _xact_totals(stack) if pooled else (0, 0)
        _drain(children, path)
    finally:
        nodes_stop(children)
        sampler.close()
    xacts, xact_us = after[0] - before[0], after[1] - before[1]
    results = [result for result, _ in measured]
    sockets = {
        kind: sum(errors[kind] for _, errors in measured) for kind in measured[0][1]
    }
    p99s = [r.p99_ms for r in results if r.p99_ms is not None]
    return FanRun(
        config=config.label,
        threads=tier.threads,
        round=round_no,
        rps=round(sum(r.rps for r in results), 1),
        requests=sum(r.requests for r in results),
        failed=sum(r.errors for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sockets,
        p99_ms=max(p99s) if p99s else None,
        peak_backends=sampled.peak,
        peak_pss_mib=round(sampled.peak_pss_kib / 1024, 1),
        peak_rss_mib=round(sampled.peak_rss_kib / 1024, 1),
        xacts_per_request=per_request,
        xact_ms=round(xact_us / xacts / 1000, 3) if pooled and xacts else None,
    )


def _progress(run: FanRun) -> None:
    print(
        f"  round {run.round} | {run.config[:44]:44} | {run.threads:4} threads | "
        f"{run.rps:7.0f} req/s | failed {run.failed:6} | backends "
        f"{run.peak_backends:3} | PSS {run.peak_pss_mib:7.1f} MiB",
        file=sys.stderr,
        flush=True,
    )


def rounds_run(
    stack: Stack, chosen: list[cfg.Configuration], path: str, plan: FanPlan,
    runs: list[FanRun],
) -> None:  # fmt: skip
    """Every configuration at every tier, round after round; each round starts
    with another configuration, so none always follows the same one."""
    for round_no in range(1, plan.rounds + 1):
        shift = (round_no - 1) % len(chosen)
        for config in chosen[shift:] + chosen[:shift]:
            for tier in plan.tiers:
                run = point_measure(
                    stack, config, tier, path, seconds=plan.seconds, round_no=round_no
                )
                _progress(run)
                runs.append(run)


def context_describe(stack: Stack, plan: FanPlan, path: str) -> dict[str, Any]:
    return {
        "command": shlex.join(
            [".venv/bin/python", "-m", "bench.fanout", *sys.argv[1:]]
        ),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": source_describe(),
        "machine": machine_describe(),
        "versions": versions_describe(stack),
        "rounds": plan.rounds,
        "seconds": plan.seconds,
        "warmup_seconds": WARMUP_SECONDS,
        "tiers": [dataclasses.asdict(t) for t in plan.tiers],
        "path": path,
        "pool": pool_size(stack),
        "max_connections": max_connections(stack.postgres.config.superuser_url().url()),
    }


def results_write(name: str, data: dict[str, Any]) -> str:
    runs = fan_runs_load(data)
    cells = cells_of(runs)
    targets = fan_targets_evaluate(cells, pool=data["context"]["pool"]["limit"])
    data = {**data, **as_json(runs, cells), "targets": targets}
    md = markdown(cells, data["context"], targets)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(md)
    problem = chart(cells, RESULTS / f"{name}.png")
    if problem:
        print(problem, file=sys.stderr)
    return md


def measure(plan: FanPlan) -> dict[str, Any]:
    runs: list[FanRun] = []
    try:
        with ephemeral_stack(
            "bench-fanout-", seed_posts=SEED_POSTS, keep_on_error=True
        ) as stack:
            path = site_prepare(stack, cfg.bench_env(stack, os.environ))
            chosen = fan_configurations(stack, plan.configs)
            context = context_describe(stack, plan, path)
            context["configurations"] = {c.label: dict(c.overrides) for c in chosen}
            rounds_run(stack, chosen, path, plan, runs)
    except BaseException:
        partial = RESULTS / f"{plan.name}-partial.json"
        partial.write_text(json.dumps([dataclasses.asdict(r) for r in runs], indent=2))
        print(f"failed: {len(runs)} runs kept in {partial}", file=sys.stderr)
        raise
    return {"context": context, "runs": [dataclasses.asdict(r) for r in runs]}


def main(argv: list[str] | None = None) -> int:
    plan = fan_plan_parse(argv)
    if plan.render_only:
        data = json.loads((RESULTS / f"{plan.name}.json").read_text())
        print(results_write(plan.name, data))
        return 0
    nofile_raise(4 * max(t.clients for t in TIERS) + 200)
    print(results_write(plan.name, measure(plan)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
