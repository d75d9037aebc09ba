"""Faults under load: devstack.faults's five, each on a private site, with a longer
load than the tests (16 clients for 20 s, the fault 6 s in). The scenarios and
their checks are devstack.faults's, the ones tests/faults asserts on.

    .venv/bin/python -m bench.faults [--only NAME,...] [--readers 12]
        [--writers 4] [--seconds 20] [--fault-at 6] [--render]

A full run (every fault, the default load) writes results/faults.{json,md};
bench.readme puts its table in bench/README.md. --only, or another load, prints
the table and writes nothing; --render rebuilds faults.md from faults.json. Run
it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from devstack.faults import SCENARIOS, FaultRun, Scenario, Shape, scenario_run
from devstack.postgres import postgres_bindir
from django_pgbouncer.render import pgbouncer_version_detect

from .stackinfo import machine_describe, source_describe

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "faults"
DEFAULT_SHAPE = Shape(readers=12, writers=4, seconds=20.0, fault_after=6.0)

# What the table's columns mean (faults.md and bench/README.md say it).
LEGEND = (
    "requests: every request the clients sent; failed: answered 5xx or not at all "
    "(reads and writes, and the statuses, in brackets); p99: the 99th percentile "
    "latency of every request; "
    "recovery: seconds from the fault to the end of the first successful request "
    "sent after the fault and after the last failure (with no failure, how long "
    "the fault stalled a new request); holds: whether the row's 'must show' held, as "
    "checked by devstack.faults (the tests' checks)."
)


def _versions() -> str:
    packages = ("Django", "psycopg", "gunicorn")
    postgres = subprocess.run(
        [str(postgres_bindir() / "postgres"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    bouncer = ".".join(map(str, pgbouncer_version_detect()))
    return ", ".join(
        [f"Python {platform.python_version()}"]
        + [f"{name} {metadata.version(name)}" for name in packages]
        + [
            postgres.replace("postgres (PostgreSQL)", "PostgreSQL"),
            f"PgBouncer {bouncer}",
        ]
    )


def context_describe(shape: Shape, argv: Sequence[str]) -> dict[str, Any]:
    return {
        "command": shlex.join([".venv/bin/python", "-m", "bench.faults", *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": source_describe(),
        "machine": machine_describe(),
        "versions": _versions(),
        "readers": shape.readers,
        "writers": shape.writers,
        "seconds": shape.seconds,
        "fault_after": shape.fault_after,
        "web": "gunicorn, 2 workers x 8 threads (devstack.faults.site)",
    }


def fault_record(scenario: Scenario, run: FaultRun) -> dict[str, Any]:
    problems = scenario.check(run)
    return {
        "name": scenario.name,
        "fault": scenario.fault,
        "must_show": scenario.must_show,
        **run.summary.as_dict(),
        "holds": not problems,
        "problems": problems,
        "events": {name: run.at(name) for name in run.events},
        "readyz": sorted({r.status for r in run.readyz}),
        "servers": run.servers,
    }


def _cell(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:g} {unit}"


def faults_table(faults: Sequence[dict[str, Any]]) -> list[str]:
    """The issue's table with what was measured: markdown lines."""
    lines = [
        "| fault | must show | requests | failed | p99 | recovery | holds |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for f in faults:
        statuses = ", ".join(
            f"{n} x {s}"
            for s, n in f["statuses"].items()
            if s == "error" or s.startswith("5")
        )
        split = f"{f['failed_reads']} reads, {f['failed_writes']} writes"
        failed = f"{f['failed']} ({split}; {statuses})" if statuses else "0"
        lines.append(
            f"| {f['fault']} | {f['must_show']} | {f['requests']} | {failed} "
            f"| {_cell(f['p99_ms'], 'ms')} | {_cell(f['recovery_s'], 's')} "
            f"| {'yes' if f['holds'] else 'NO'} |"
        )
    return lines


def conditions_line(context: dict[str, Any]) -> str:
    return (
        f"`{context['command']}` on {context['date']}, commit {context['commit']}; "
        f"{context['machine']}; {context['versions']}. Each fault on a private "
        f"site ({context['web']}): {context['readers']} clients reading the list "
        f"and a detail page and {context['writers']} logged-in admins adding "
        f"posts, on keep-alive connections, for {context['seconds']:g} s; the "
        f"fault {context['fault_after']:g} s in."
    )


def markdown(data: dict[str, Any]) -> str:
    problems = [
        f"- {f['name']}: {problem}" for f in data["faults"] for problem in f["problems"]
    ]
    parts = [
        "# Faults under load (bench.faults)",
        "",
        conditions_line(data["context"]),
        "",
        *faults_table(data["faults"]),
        "",
        LEGEND,
    ]
    if problems:
        parts += ["", "What did not hold:", "", *problems]
    return "\n".join(parts) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    add = parser.add_argument
    add("--only", default="", help="fault names, e.g. overload,postgres-killed")
    add("--readers", type=int, default=DEFAULT_SHAPE.readers)
    add("--writers", type=int, default=DEFAULT_SHAPE.writers)
    add("--seconds", type=float, default=DEFAULT_SHAPE.seconds)
    add("--fault-at", type=float, default=DEFAULT_SHAPE.fault_after)
    add("--render", action="store_true", help="faults.md again from faults.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.render:  # after a change to the table, from the committed run
        md = markdown(json.loads((RESULTS / f"{NAME}.json").read_text()))
        (RESULTS / f"{NAME}.md").write_text(md)
        print(md)
        return 0
    shape = Shape(args.readers, args.writers, args.seconds, args.fault_at)
    only = [n for n in args.only.split(",") if n]
    unknown = set(only) - {s.name for s in SCENARIOS}
    if unknown:
        names = ", ".join(s.name for s in SCENARIOS)
        sys.exit(f"--only: no fault named {sorted(unknown)}; the faults are {names}")
    chosen = [s for s in SCENARIOS if not only or s.name in only]
    data: dict[str, Any] = {"context": context_describe(shape, argv), "faults": []}
    for scenario in chosen:
        print(f"{scenario.name} ...", file=sys.stderr, flush=True)
        run = scenario_run(scenario, shape=shape, keep_on_error=True)
        data["faults"].append(fault_record(scenario, run))
    md = markdown(data)
    print(md)
    if not only and shape == DEFAULT_SHAPE:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{NAME}.json").write_text(json.dumps(data, indent=2) + "\n")
        (RESULTS / f"{NAME}.md").write_text(md)
        print(f"wrote results/{NAME}.json and .md; then: python -m bench.readme")
    return 0 if all(f["holds"] for f in data["faults"]) else 1


if __name__ == "__main__":
    sys.exit(main())
