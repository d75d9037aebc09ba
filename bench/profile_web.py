"""Where a configuration's time goes: start the stack and one configuration of
bench.harness, load it with wrk, and meanwhile record each gunicorn worker with
py-spy, count the keep-alive connections each worker holds, and the CPU seconds of
every process involved.

    .venv/bin/python -m bench.profile_web [--config 6] [--seconds 15] [--clients 16]
        [--page list] [--set KEY=VALUE ...]

Needs py-spy in .venv (pip install py-spy==0.4.3). Writes
bench/results/profile-<config>.txt.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from devstack.stack import Stack

from . import configs as cfg
from .harness import RESULTS, bench_stack, site_prepare
from .measure import (
    children_of,
    cluster_cpu_seconds,
    connections_per_process,
    process_cpu_seconds,
    wrk_run,
)

PY_SPY = Path(sys.executable).parent / "py-spy"


def py_spy_top(pid: int, seconds: int, *, gil: bool) -> str:
    """Folded stacks from `py-spy record --format raw`; with `gil`, only the
    thread holding the GIL is sampled (where the CPU goes, not who waits)."""
    raw = Path(tempfile.mkstemp(suffix=".txt")[1])
    argv = [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(seconds)]
    argv += ["--format", "raw", "--output", str(raw), "--nonblocking"]
    argv += ["--gil"] if gil else []
    subprocess.run(
        argv,
        capture_output=True,
        check=False,
    )
    text = raw.read_text()
    raw.unlink()
    return text


def self_time(folded: str, top: int = 25) -> list[tuple[str, int]]:
    """The leaf frames with the most samples, from py-spy's folded stacks."""
    leaves: dict[str, int] = {}
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        leaves[leaf] = leaves.get(leaf, 0) + int(count)
    return sorted(leaves.items(), key=lambda kv: -kv[1])[:top]


def frames_including(folded: str, needles: dict[str, str]) -> dict[str, int]:
    """Samples whose stack passes through each named frame (inclusive time)."""
    totals = dict.fromkeys(needles, 0)
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for name, needle in needles.items():
            if needle in stack:
                totals[name] += int(count)
    totals["(all samples)"] = total
    return totals


NEEDLES = {
    "Django's ORM and backends (django/db/)": "django/db/",
    "psycopg (driver)": "psycopg/",
    "database (execute/fetch/connect)": "django/db/backends",
    "psycopg connect": "Connection.connect (",
    "health check (is_usable)": "is_usable (",
    "queryset evaluation (_fetch_all)": "QuerySet._fetch_all (",
    "request_started/finished signals": "Signal.send (",
    "template rendering": "django/template/",
    "middleware + handler (all of Django)": "django/core/handlers/",
    "gunicorn (accept/parse/write)": "gunicorn/",
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_web")
    parser.add_argument("--config", default="6")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--page", default="list", choices=("list", "detail"))
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--gil", action="store_true", help="sample GIL holders only")
    args = parser.parse_args()
    with bench_stack("bench-profile-") as stack:
        lines = config_profile(stack, args)
    text = "\n".join(lines) + "\n"
    suffix = "-gil" if args.gil else ""
    (RESULTS / f"profile-{args.config}{suffix}.txt").write_text(text)
    print(text)
    return 0


def config_profile(stack: Stack, args: argparse.Namespace) -> list[str]:
    """Start the configuration asked for, profile it under load, stop it."""
    detail = site_prepare(stack, cfg.bench_env(stack, os.environ))
    (config,) = [
        c for c in cfg.configurations(stack, os.environ) if c.key == args.config
    ]
    extra = dict(item.split("=", 1) for item in args.set)
    config = cfg.Configuration(
        config.key, config.name, config.server, {**config.env, **extra}, extra
    )
    url = stack.web_url + ("/" if args.page == "list" else detail)
    web = cfg.server_child(stack, config)
    try:
        web.start(timeout=60)
        lines = profile(stack, web.process.pid if web.process else 0, url, args)
    finally:
        web.stop()
    mode = "--gil" if args.gil else "(active threads)"
    header = f"{config.label} {extra or ''}, {args.page} page, {args.clients} clients"
    return [f"{header}, py-spy {mode}", *lines]


def profile(stack: Stack, master: int, url: str, args: argparse.Namespace) -> list[str]:
    wrk_run(url, clients=args.clients, seconds=2)  # warm up
    workers = children_of(master) or [master]
    watched = {"web master": [master], "web workers": workers}
    before = {pid: process_cpu_seconds(pid) for pid in [master, *workers]}
    bouncer = stack.pgbouncer.child.process.pid  # type: ignore[union-attr]
    postmaster = stack.postgres.child.process.pid  # type: ignore[union-attr]
    cpu0 = process_cpu_seconds(bouncer), cluster_cpu_seconds(postmaster)
    result: dict[str, object] = {}
    load = threading.Thread(
        target=lambda: result.update(
            wrk=wrk_run(url, clients=args.clients, seconds=args.seconds)
        )
    )
    load.start()
    time.sleep(1)
    spread = connections_per_process(stack.settings.web_port)
    folded: dict[int, str] = {}
    spies = [
        threading.Thread(
            target=lambda pid=pid: folded.update(
                {pid: py_spy_top(pid, args.seconds - 3, gil=args.gil)}
            )
        )
        for pid in workers
    ]
    for spy in spies:
        spy.start()
    for thread in [*spies, load]:
        thread.join()
    wall = args.seconds
    lines = [
        f"wrk: {result['wrk']}",
        f"keep-alive connections per worker pid 1 s in: {spread}",
        f"CPU over the ~{wall} s run (2 cores = {2 * wall} s available):",
    ]
    for name, pids in watched.items():
        for pid in pids:
            used = process_cpu_seconds(pid) - before[pid]
            lines.append(f"  {name} {pid}: {used:.1f} s")
    lines.append(f"  PgBouncer: {process_cpu_seconds(bouncer) - cpu0[0]:.1f} s")
    lines.append(f"  PostgreSQL: {cluster_cpu_seconds(postmaster) - cpu0[1]:.1f} s")
    return lines + _samples_describe(folded)


def _samples_describe(folded: dict[int, str]) -> list[str]:
    """Per worker: samples through the frames of NEEDLES, and the top leaves."""
    lines = []
    for pid, text in folded.items():
        lines.append(f"worker {pid}: samples through (inclusive):")
        for name, count in frames_including(text, NEEDLES).items():
            lines.append(f"  {name:40} {count}")
        lines.append(f"worker {pid}: top leaf frames (self samples):")
        lines += [f"  {count:6} {leaf}" for leaf, count in self_time(text)]
    return lines


if __name__ == "__main__":
    sys.exit(main())
