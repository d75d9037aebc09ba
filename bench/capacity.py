"""docs/capacity.md's model: what a web tier and a request rate need, in client
connections, PostgreSQL backends, PgBouncer processes and database servers.

The connection side is the checks' own formula (django_pgbouncer.checks.Capacity,
E007 and E008); the rate side is Little's law on what bench.fanout measured
through PgBouncer (transactions per request, and how long each holds a server
connection) and on pgbench's ceilings (bench.harness). Pure; `measured_inputs`
reads the committed result files.

    .venv/bin/python -m bench.capacity RATE PROCESSES THREADS
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django_pgbouncer.checks import Capacity

RESULTS = Path(__file__).resolve().parent / "results"
# PostgreSQL's defaults, and make run's: max_connections 100, 3 reserved.
MAX_CONNECTIONS, RESERVED = 100, 3
# A pool sized for the mean load is full half the time: twice the mean leaves
# room for bursts (a Poisson load of 10 busy servers passes 20 about 0.3% of
# the time).
HEADROOM = 2.0


@dataclass(frozen=True)
class Measured:
    """Per-request costs and per-process ceilings, from the result files."""

    xacts_per_request: float  # PgBouncer's SHOW STATS over bench.fanout's runs
    xact_ms: float  # mean time a transaction holds a server connection
    pgbouncer_tps: float  # pgbench -S through one PgBouncer process
    server_tps: float  # pgbench -S straight to one PostgreSQL server


@dataclass(frozen=True)
class Need:
    clients: int  # PgBouncer's max_client_conn at least (E007)
    busy_backends: float  # server connections in use on average
    pool: int  # default_pool_size to set, in each PgBouncer process
    backends: int  # the checks' Capacity.backends with that pool (E008's side)
    pgbouncer_processes: int
    servers: int  # PostgreSQL servers: the primary and its replicas
    replicas: int


def capacity_need(
    *, rate: float, processes: int, threads: int, measured: Measured
) -> Need:
    """What `rate` requests per second on `processes` x `threads` web threads
    need, one pooled alias and one direct alias (the site's settings)."""
    xacts = rate * measured.xacts_per_request
    busy = xacts * measured.xact_ms / 1000
    bouncers = max(1, math.ceil(xacts / measured.pgbouncer_tps))
    # Each PgBouncer process keeps a pool of its own: the pool is split.
    pool = max(1, math.ceil(busy * HEADROOM / bouncers))
    budget = Capacity(
        processes=processes,
        threads=threads,
        pooled_aliases=1,
        direct_aliases=1,
        max_client_conn=0,
        default_pool_size=pool,
        reserve_pool_size=0,
        pools=1,
        max_db_connections=0,
        max_connections=MAX_CONNECTIONS,
        superuser_reserved_connections=RESERVED,
        pgbouncer_processes=bouncers,
    )
    servers = max(1, math.ceil(xacts / measured.server_tps))
    return Need(
        clients=budget.clients,
        busy_backends=round(busy, 2),
        pool=pool,
        backends=budget.backends,
        pgbouncer_processes=bouncers,
        servers=servers,
        replicas=servers - 1,
    )


def _pgbench_median(data: dict[str, Any], name: str) -> float:
    return float(statistics.median(r["tps"] for r in data["pgbench"][name]))


def measured_inputs(results: Path = RESULTS) -> Measured:
    """The model's inputs: ours (configuration 6) at the smallest tier in
    results/fanout.json, the pgbench medians in results/latest.json."""
    fanout = json.loads((results / "fanout.json").read_text())
    ours = [
        r
        for r in fanout["runs"]
        if r["config"].startswith("6. ") and r["xact_ms"] is not None
    ]
    # The smallest tier's transaction time: the service time, with the least
    # waiting for the CPU the web tier shares on the benchmark's machine.
    smallest = min(r["threads"] for r in ours)
    ours = [r for r in ours if r["threads"] == smallest]
    latest = json.loads((results / "latest.json").read_text())
    return Measured(
        xacts_per_request=statistics.median(r["xacts_per_request"] for r in ours),
        xact_ms=statistics.median(r["xact_ms"] for r in ours),
        pgbouncer_tps=_pgbench_median(latest, "through PgBouncer"),
        server_tps=_pgbench_median(latest, "direct"),
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or not all(a.isdigit() and int(a) > 0 for a in args):
        sys.exit("usage: python -m bench.capacity RATE PROCESSES THREADS")
    rate, processes, threads = (int(a) for a in args)
    measured = measured_inputs()
    print(measured)
    print(
        capacity_need(
            rate=rate, processes=processes, threads=threads, measured=measured
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
