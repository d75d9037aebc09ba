"""bench/README.md, made from the committed result files alone: the latest full
comparison (tables, chart, conditions, targets, pgbench, the guard's cost) and what
each older file measured. `make bench` runs it after the harness.

    .venv/bin/python -m bench.readme

The figures come from the JSON; only the prose below is written by hand. A note
names the run it was written for (its date), so a new run of the same name shows
up as undescribed instead of borrowing the old run's description.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import fanout_report, report
from .faults import LEGEND, conditions_line, faults_table
from .faults import NAME as FAULTS
from .notes import COMPARISONS, CONFIGURATIONS, NOTES, RUNNING
from .plan import LATEST, QUICK
from .targets import fan_targets_evaluate, targets_evaluate

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
README = BENCH / "README.md"


def result_load(name: str) -> tuple[dict[str, Any], list[report.Summary]]:
    """A result file and its medians, computed again from its runs."""
    data: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    data["context"].setdefault("pool", data["pool"])
    return data, report.summaries(report.runs_load(data))


def _key(label: str) -> str:
    return label.split(". ", 1)[0]


def _cells_of(cells: Sequence[report.Summary], key: str) -> list[report.Summary]:
    return [c for c in cells if _key(c.config) == key]


def pairs_table(
    cells: Sequence[report.Summary], pairs: Sequence[tuple[str, str, str]]
) -> list[str]:
    """Two configurations cell by cell: (what, a, b) -> a's req/s, b's, b / a."""
    lines = [
        "| comparison | page | clients | first | second | second / first |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for what, first, second in pairs:
        by_cell = {(c.page, c.clients): c for c in _cells_of(cells, first)}
        for b in _cells_of(cells, second):
            a = by_cell.get((b.page, b.clients))
            if a is None:
                continue
            ratio = b.rps_median / a.rps_median if a.rps_median else 0.0
            lines.append(
                f"| {what} ({first} -> {second}) | {b.page} | {b.clients} "
                f"| {report.rps_text(a)} | {report.rps_text(b)} | {ratio:.2f}x |"
            )
    return lines


def note_text(name: str, run: str) -> str:
    """What bench/notes.py says of the file `name`, if written for this `run`."""
    note = NOTES.get(name)
    if note is None:
        return (
            "**Not described**: say in bench/notes.py what this file measured, "
            "and under which conditions, before quoting it."
        )
    if note.run != run:
        return (
            f"**Not described**: bench/notes.py describes the run {note.run!r}, "
            f"this file is {run!r}: describe it anew."
        )
    return note.text


def pgbench_lines(pgbench: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The table, and what PgBouncer costs (persistent) and saves (-C)."""
    tps = {
        name: statistics.median(r["tps"] for r in runs)
        for name, runs in pgbench.items()
    }
    lines = [report.pgbench_table(pgbench), ""]
    for through, direct, what in (
        ("through PgBouncer", "direct", "persistent connections"),
        ("through PgBouncer, -C", "direct, -C (a connection per transaction)", "-C"),
    ):
        if tps.get(through) and tps.get(direct):
            lines.append(
                f"- {what}: through PgBouncer / direct = {tps[through]:,.0f} / "
                f"{tps[direct]:,.0f} TPS = {tps[through] / tps[direct]:.2f}x"
            )
    return lines


def latest_section(data: dict[str, Any], cells: list[report.Summary]) -> list[str]:
    context = data["context"]
    quick = bool(context.get("quick", "--quick" in context["command"]))
    verdicts = targets_evaluate(cells, pool=data["pool"], quick=quick)
    lines = [
        f"## The comparison the docs quote: results/{LATEST}.json",
        "",
        note_text(LATEST, context["date"]),
        "",
        *report.conditions(context),
        "",
        "### The configurations",
        "",
        *[f"{key}. {text}" for key, text in CONFIGURATIONS.items()],
        "",
        "### Side by side",
        "",
        "req/s, median of the rounds (min..max); the keys are the "
        "configurations above.",
        "",
        *pairs_table(cells, COMPARISONS),
        "",
        f"![median req/s per configuration](results/{LATEST}.png)",
        "",
        "### Every cell",
        "",
        report.web_table(cells),
        "",
        "### Targets (bench/targets.py, on the medians above)",
        "",
        *[f"- {line}" for line in verdicts],
    ]
    if data.get("pgbench"):
        lines += ["", "### pgbench (select-only, scale 1)", ""]
        lines += pgbench_lines(data["pgbench"])
    if data.get("guard_cost"):
        lines += ["", "### The runtime guard's cost (bench.guard_cost)", ""]
        lines.append(report.guard_table(data["guard_cost"]))
    return lines


def _setting(context: dict[str, Any], latest: dict[str, Any]) -> str:
    """The machine and versions, where they differ from the latest run's."""
    same = all(context[k] == latest[k] for k in ("machine", "versions"))
    if same:
        return f"machine and versions as in {LATEST}.json"
    return f"{context['machine']}; {context['versions']}"


def history_section(name: str, latest: dict[str, Any]) -> list[str]:
    data, cells = result_load(name)
    context = data["context"]
    files = ", ".join(
        f"`{p.name}`" for p in sorted(RESULTS.glob(f"{name}.*")) if p.stem == name
    )
    lines = [
        f"### results/{name}",
        "",
        f"Files: {files}. {note_text(name, context['date'])}",
        "",
        f"Run: `{context['command']}` on {context['date']}; {context['rounds']} "
        f"round(s) of {context['seconds']} s; clients {context['clients']}; "
        f"{_setting(context, latest)}. "
        f"Every cell: results/{name}.md.",
        "",
    ]
    few = [c for c in cells if c.clients == min(c.clients for c in cells)]
    lines += report.web_table(few).splitlines()
    note = NOTES.get(name)
    if note is not None and note.run == context["date"] and note.same:
        lines += ["", "The same configuration twice in this run (the noise):", ""]
        lines += pairs_table(cells, [("the same", a, b) for a, b in note.same])
    return lines


def faults_section() -> list[str]:
    """bench.faults's table, when its result file is there."""
    path = RESULTS / f"{FAULTS}.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [
        f"## Faults under load: results/{FAULTS}.json",
        "",
        note_text(FAULTS, data["context"]["date"]),
        "",
        conditions_line(data["context"]),
        "",
        *faults_table(data["faults"]),
        "",
        LEGEND,
        "",
    ]


def fanout_section() -> list[str]:
    """bench.fanout's table, chart and targets, when its result file is there."""
    path = RESULTS / f"{fanout_report.NAME}.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    context = data["context"]
    cells = fanout_report.cells_of(fanout_report.runs_load(data))
    verdicts = fan_targets_evaluate(cells, pool=context["pool"]["limit"])
    return [
        f"## Fan-out: a growing web tier, results/{fanout_report.NAME}.json",
        "",
        note_text(fanout_report.NAME, context["date"]),
        "",
        *fanout_report.conditions(context),
        "",
        "Configurations: "
        + "; ".join(
            f"{label} {dict(o) or ''}".strip()
            for label, o in context["configurations"].items()
        )
        + ".",
        "",
        *fanout_report.fanout_table(cells),
        "",
        f"![the fan-out's curves](results/{fanout_report.NAME}.png)",
        "",
        "Targets (bench/targets.py):",
        "",
        *[f"- {line}" for line in verdicts],
        "",
    ]


def guard_cost_section() -> list[str]:
    """bench.guard_cost's share of a query, from its result file's list."""
    path = RESULTS / "guard_cost.md"
    if not path.exists():
        return []
    text = path.read_text()
    run = next(line for line in text.splitlines() if line.startswith("Run:"))
    shares = [line for line in text.splitlines() if line.startswith("- ")]
    return [
        "## The runtime guard's cost: results/guard_cost.md",
        "",
        run,
        "",
        "The guard's share of a query through PgBouncer (its execute wrapper over "
        "the median query with the guard off):",
        "",
        *shares,
        "",
    ]


def history_names() -> list[str]:
    """Web result files other than the latest run, oldest first; quick runs and
    partial ones are never committed, and the faults' and fan-out's files have
    sections of their own."""
    names = []
    for path in RESULTS.glob("*.json"):
        skip = (LATEST, QUICK, FAULTS, fanout_report.NAME)
        if path.stem not in skip and not path.stem.endswith("-partial"):
            names.append(path.stem)
    dates = {
        n: json.loads((RESULTS / f"{n}.json").read_text())["context"]["date"]
        for n in names
    }
    return sorted(names, key=lambda n: (dates[n], n))


def profiles_section() -> list[str]:
    lines = ["### Profiles (bench.profile_web)", ""]
    for path in sorted(RESULTS.glob("profile-*.txt")):
        header = path.read_text().splitlines()[0]
        lines.append(f"- `{path.name}` ({header}): {note_text(path.name, header)}")
    return lines


def readme_render() -> str:
    data, cells = result_load(LATEST)
    parts = [
        "# Benchmarks",
        "",
        "<!-- Made by `.venv/bin/python -m bench.readme` from bench/results/ "
        "(make bench runs it): edit bench/notes.py or bench/readme.py, "
        "not this file. -->",
        "",
        *RUNNING,
        "",
        *latest_section(data, cells),
        "",
        *fanout_section(),
        *faults_section(),
        *guard_cost_section(),
        "## History: older result files",
        "",
        "Kept for what they showed when the defaults were chosen; their conditions "
        "differ from today's code as each says. Each run's configurations were "
        "interleaved, so compare within a file; between files, compare ratios.",
    ]
    for name in history_names():
        parts += ["", *history_section(name, data["context"])]
    parts += ["", *profiles_section()]
    return "\n".join(parts) + "\n"


def main() -> int:
    README.write_text(readme_render())
    print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
