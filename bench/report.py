"""bench.harness's results: medians of the rounds, the Markdown tables, the chart."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Run:
    """One wrk run of one configuration, page and client count, in one round."""

    config: str  # the configuration's label
    page: str
    clients: int
    round: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    non_2xx: int
    socket_errors: int
    requests: int
    peak_pg: int
    cpu_pgbouncer_s: float
    cpu_postgres_s: float
    # wrk's connections per web server process, 1 s in, largest first.
    split: tuple[int, ...] = ()


@dataclass(frozen=True)
class Summary:
    """The rounds of one (configuration, page, clients) cell."""

    config: str
    page: str
    clients: int
    rounds: int
    rps_median: float
    rps_min: float
    rps_max: float
    p50_ms: float | None
    p99_ms: float | None
    errors_median: float
    errors_max: int
    peak_pg: int  # the highest of the rounds
    cpu_pgbouncer_s: float
    cpu_postgres_s: float
    splits: tuple[str, ...] = ()  # per round, e.g. "9/7"


def _split(run: Run) -> str:
    return "/".join(map(str, run.split)) or "?"


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summaries(runs: Sequence[Run]) -> list[Summary]:
    cells: dict[tuple[str, str, int], list[Run]] = {}
    for run in runs:
        cells.setdefault((run.config, run.page, run.clients), []).append(run)
    out = []
    for (config, page, clients), group in cells.items():
        rps = [r.rps for r in group]
        out.append(
            Summary(
                config=config,
                page=page,
                clients=clients,
                rounds=len(group),
                rps_median=statistics.median(rps),
                rps_min=min(rps),
                rps_max=max(rps),
                p50_ms=_median([r.p50_ms for r in group]),
                p99_ms=_median([r.p99_ms for r in group]),
                errors_median=statistics.median(r.errors for r in group),
                errors_max=max(r.errors for r in group),
                peak_pg=max(r.peak_pg for r in group),
                cpu_pgbouncer_s=statistics.median(r.cpu_pgbouncer_s for r in group),
                cpu_postgres_s=statistics.median(r.cpu_postgres_s for r in group),
                splits=tuple(_split(r) for r in group),
            )
        )
    return out


def rps_text(s: Summary) -> str:
    """`835 (435..881)`: the median req/s of the rounds, and their range."""
    return f"{s.rps_median:,.0f} ({s.rps_min:,.0f}..{s.rps_max:,.0f})"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def _errors(s: Summary) -> str:
    if s.errors_max == 0:
        return "0"
    return f"{s.errors_median:.0f} (max {s.errors_max})"


def web_table(cells: Sequence[Summary]) -> str:
    lines = [
        "| configuration | page | clients | req/s median (min..max) | p50 | p99 "
        "| errors | peak PG conns | CPU PgBouncer | CPU PostgreSQL "
        "| conns per worker |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for s in cells:
        lines.append(
            f"| {s.config} | {s.page} | {s.clients} | {rps_text(s)} | {_ms(s.p50_ms)} "
            f"| {_ms(s.p99_ms)} | {_errors(s)} | {s.peak_pg} "
            f"| {s.cpu_pgbouncer_s:.1f} s | {s.cpu_postgres_s:.1f} s "
            f"| {', '.join(s.splits)} |"
        )
    return "\n".join(lines)


def pgbench_table(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| pgbench -S -c 16 -j 2 | TPS median (min..max) | latency average |",
        "|---|--:|--:|",
    ]
    for name, runs in results.items():
        tps = [r["tps"] for r in runs]
        latency = _median([r["latency_ms"] for r in runs])
        # Older result files predate the count of failed transactions.
        failed = sum(r.get("failed", 0) for r in runs)
        lines.append(
            f"| {name} | {statistics.median(tps):,.0f} ({min(tps):,.0f}.."
            f"{max(tps):,.0f}){f', {failed} failed' if failed else ''} "
            f"| {_ms(latency)} |"
        )
    return "\n".join(lines)


def guard_table(guard: dict[str, Any]) -> str:
    lines = ["| the guard | cost |", "|---|--:|"]
    for name, ns in guard["classifier_ns"].items():
        lines.append(f"| classifier alone: {name} | {ns / 1000:.1f} us |")
    for name, runs in guard["through_pgbouncer_us"].items():
        lines.append(
            f"| a query through PgBouncer, {name} (median of {len(runs)}, "
            f"{min(runs):.0f}..{max(runs):.0f}) | {statistics.median(runs):.0f} us |"
        )
    return "\n".join(lines)


def _pool_line(context: dict[str, Any]) -> str:
    pool = context.get("pool") or {}
    raised = ", ".join(f"{k}={v}" for k, v in context["pgbouncer_variables"].items())
    line = (
        f"PgBouncer (transaction mode): default_pool_size "
        f"{pool.get('default_pool_size', '?')}, reserve_pool_size "
        f"{pool.get('reserve_pool_size', '?')}; {raised} for the clients of "
        "configurations 1 and 5 (PgBouncer's default is 100). gunicorn: "
        "config/gunicorn.py's defaults (2 workers x 4 gthread threads)."
    )
    extra = context.get("set_everywhere")
    if extra:
        line += f" Set in every configuration: {extra}."
    return line


def _source_line(context: dict[str, Any]) -> str:
    commit = context.get("commit")
    if not commit:
        return ""
    return f" Code: commit {commit}."


def conditions(context: dict[str, Any]) -> list[str]:
    """The paragraphs that say how a result file was measured."""
    return [
        f"`{context['command']}` on {context['date']}; {context['machine']}; "
        f"{context['versions']}.{_source_line(context)}",
        "",
        f"wrk -t2 --timeout 10s --latency, {context['seconds']} s per run after a "
        f"2 s warm-up, {context['rounds']} round(s), "
        f"{'/'.join(map(str, context['clients']))} clients, configurations "
        "interleaved. "
        "req/s counts 2xx/3xx responses only; errors = non-2xx + socket errors "
        "(connect, read, write, timeout); p50/p99 and CPU seconds are medians of "
        "the rounds; peak PG conns is the highest count of PostgreSQL client "
        "backends on the site's database, sampled every 100 ms; conns per worker: "
        "how wrk's keep-alive connections were spread over the web server's "
        "processes 1 s into each round (ss). Detail page: "
        f"`{context['detail_path']}`.",
        "",
        _pool_line(context),
    ]


def markdown(
    *,
    cells: Sequence[Summary],
    targets: Sequence[str],
    pgbench: dict[str, list[dict[str, Any]]] | None,
    guard: dict[str, Any] | None,
    context: dict[str, Any],
) -> str:
    parts = [
        "# Load benchmark: Django behind PgBouncer",
        "",
        *conditions(context),
        "",
        web_table(cells),
        "",
        "## Targets",
        "",
        *[f"- {line}" for line in targets],
    ]
    if pgbench:
        parts += ["", "## pgbench (select-only, scale 1)", "", pgbench_table(pgbench)]
    if guard:
        parts += ["", "## The runtime guard (bench.guard_cost)", "", guard_table(guard)]
    return "\n".join(parts) + "\n"


def chart(cells: Sequence[Summary], path: Path) -> str | None:
    """Grouped bars of median req/s, one panel per page; None if matplotlib is
    missing (then say what to install)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install matplotlib==3.11.2"
    pages = list(dict.fromkeys(s.page for s in cells))
    configs = list(dict.fromkeys(s.config for s in cells))
    clients = sorted({s.clients for s in cells})
    by_key = {(s.config, s.page, s.clients): s for s in cells}
    fig, axes = plt.subplots(len(pages), 1, figsize=(12, 4.5 * len(pages)))
    axes_list = list(axes) if len(pages) > 1 else [axes]
    width = 0.8 / len(clients)
    for ax, page in zip(axes_list, pages, strict=True):
        for i, count in enumerate(clients):
            found = [by_key.get((c, page, count)) for c in configs]
            values = [s.rps_median if s else 0.0 for s in found]
            spread = (
                [s.rps_median - s.rps_min if s else 0.0 for s in found],
                [s.rps_max - s.rps_median if s else 0.0 for s in found],
            )
            xs = [x + i * width for x in range(len(configs))]
            ax.bar(xs, values, width, yerr=spread, capsize=2, label=f"{count} clients")
        ax.set_xticks([x + width * (len(clients) - 1) / 2 for x in range(len(configs))])
        ax.set_xticklabels([c.split(". ", 1)[0] for c in configs])
        ax.set_ylabel("req/s, 2xx (median; bars: min..max)")
        ax.set_title(f"{page} page")
        ax.legend()
    legend = "\n".join(configs)
    fig.text(0.01, 0.0, legend, fontsize=8, va="bottom")
    fig.tight_layout(rect=(0, 0.03 * len(configs) / len(pages), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def as_json(runs: Sequence[Run], cells: Sequence[Summary]) -> dict[str, Any]:
    return {
        "runs": [asdict(r) for r in runs],
        "medians": [asdict(s) for s in cells],
    }


def runs_load(data: dict[str, Any]) -> list[Run]:
    """The runs of a result file (JSON keeps the split as a list; older files
    may have none)."""
    return [Run(**{**r, "split": tuple(r.get("split", ()))}) for r in data["runs"]]
