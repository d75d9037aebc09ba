"""bench.fanout's results: the tiers, one run's numbers, the medians of the
rounds, the Markdown table and the chart. Pure but for the chart's file."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

NAME = "fanout"  # results/fanout.*: the full run bench/README.md quotes


@dataclass(frozen=True)
class Tier:
    """A web tier: `nodes` gunicorn instances (as if one per web node), each of
    `workers` processes of `threads_per_process` threads."""

    nodes: int
    workers: int
    threads_per_process: int

    @property
    def processes(self) -> int:
        return self.nodes * self.workers

    @property
    def threads(self) -> int:
        return self.processes * self.threads_per_process

    @property
    def clients(self) -> int:
        """wrk's connections: two per thread, so every thread is kept busy and
        requests queue behind it, as under a real overload of the tier."""
        return 2 * self.threads

    @property
    def label(self) -> str:
        return (
            f"{self.threads} threads ({self.nodes} x {self.workers} workers x "
            f"{self.threads_per_process})"
        )


# 8 threads is config/gunicorn.py's default (2 workers x 4 threads); 256 threads
# over 4 nodes is the most this 2-core machine serves without the load itself
# swamping it.
TIERS = (Tier(1, 2, 4), Tier(2, 2, 16), Tier(4, 2, 32))


@dataclass(frozen=True)
class FanRun:
    """One configuration at one tier, in one round: every node's wrk added up."""

    config: str  # the configuration's label
    threads: int  # the tier's size (Tier.threads)
    round: int
    rps: float  # 2xx/3xx responses per second, over every node
    requests: int
    failed: int  # non-2xx/3xx responses and socket errors
    p99_ms: float | None  # the worst node's
    peak_backends: int  # PostgreSQL client backends on the site's database
    peak_pss_mib: float  # their summed proportional set size, at its peak
    peak_rss_mib: float  # their summed resident set size, at its peak
    # PgBouncer's SHOW STATS (None when not through PgBouncer): transactions per
    # request (of requests one at a time), and their mean time on a server
    # connection over the run.
    xacts_per_request: float | None = None
    xact_ms: float | None = None
    # How `failed` splits: responses other than 2xx/3xx, and wrk's socket errors
    # by kind (connect, read, write, timeout). None: not recorded.
    non_2xx: int | None = None
    socket_errors: dict[str, int] | None = None


@dataclass(frozen=True)
class FanCell:
    """The rounds of one (configuration, tier)."""

    config: str
    threads: int
    rounds: int
    rps_median: float
    failed_median: float
    failed_max: int
    backends_median: float
    backends_max: int
    pss_mib_median: float
    rss_mib_median: float
    p99_ms: float | None
    xacts_per_request: float | None
    xact_ms: float | None
    failed_kinds: str = ""  # of the worst round, e.g. "non-2xx 3, timeout 1"


def failed_kinds(run: FanRun) -> str:
    """What `run`'s failures were, as far as it recorded them."""
    if run.non_2xx is None or run.socket_errors is None:
        return ""
    kinds = {"non-2xx": run.non_2xx, **run.socket_errors}
    return ", ".join(f"{kind} {count}" for kind, count in kinds.items() if count)


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def cells_of(runs: Sequence[FanRun]) -> list[FanCell]:
    groups: dict[tuple[str, int], list[FanRun]] = {}
    for run in runs:
        groups.setdefault((run.config, run.threads), []).append(run)
    return [
        FanCell(
            config=config,
            threads=threads,
            rounds=len(group),
            rps_median=statistics.median(r.rps for r in group),
            failed_median=statistics.median(r.failed for r in group),
            failed_max=max(r.failed for r in group),
            backends_median=statistics.median(r.peak_backends for r in group),
            backends_max=max(r.peak_backends for r in group),
            pss_mib_median=statistics.median(r.peak_pss_mib for r in group),
            rss_mib_median=statistics.median(r.peak_rss_mib for r in group),
            p99_ms=_median([r.p99_ms for r in group]),
            xacts_per_request=_median([r.xacts_per_request for r in group]),
            xact_ms=_median([r.xact_ms for r in group]),
            failed_kinds=failed_kinds(max(group, key=lambda r: r.failed)),
        )
        for (config, threads), group in sorted(
            groups.items(), key=lambda item: (item[0][0], item[0][1])
        )
    ]


def _failed(cell: FanCell) -> str:
    if cell.failed_max == 0:
        return "0"
    kinds = f": {cell.failed_kinds}" if cell.failed_kinds else ""
    return f"{cell.failed_median:,.0f} (max {cell.failed_max:,}{kinds})"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _xact(cell: FanCell) -> str:
    if cell.xact_ms is None or cell.xacts_per_request is None:
        return "-"
    return f"{cell.xacts_per_request:.2f} x {cell.xact_ms:.2f} ms"


def fanout_table(cells: Sequence[FanCell]) -> list[str]:
    lines = [
        "| configuration | web threads | req/s | failed | p99 | PostgreSQL "
        "backends (peak) | backends' PSS | backends' RSS | PgBouncer: "
        "transactions per request x mean time |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in cells:
        lines.append(
            f"| {c.config} | {c.threads} | {c.rps_median:,.0f} | {_failed(c)} "
            f"| {_ms(c.p99_ms)} | {c.backends_median:.0f} (max {c.backends_max}) "
            f"| {c.pss_mib_median:,.0f} MiB | {c.rss_mib_median:,.0f} MiB "
            f"| {_xact(c)} |"
        )
    return lines


def conditions(context: dict[str, Any]) -> list[str]:
    tiers = "; ".join(Tier(**t).label for t in context["tiers"])
    pool = ", ".join(
        f"{key} {context['pool'][key]}"
        for key in ("default_pool_size", "reserve_pool_size", "max_client_conn")
    )
    return [
        f"Run: `{context['command']}` on {context['date']}, commit "
        f"{context['commit']}; {context['machine']}; {context['versions']}.",
        "",
        f"Each point: {context['rounds']} rounds, configurations and tiers "
        f"interleaved, {context['seconds']} s of load after a "
        f"{context['warmup_seconds']} s warm-up, on the detail page "
        f"(`{context['path']}`); one wrk per node, two connections per web "
        f"thread; medians of the rounds. Tiers: {tiers}. PgBouncer: {pool} (the "
        "renderer's defaults); PostgreSQL "
        f"max_connections {context['max_connections']}. Backends are PostgreSQL's "
        "client backends on the site's database, sampled from pg_stat_activity "
        "every 0.1 s; their memory, the sum over them of /proc/PID/smaps_rollup "
        "every second, at its peak.",
    ]


def markdown(
    cells: Sequence[FanCell], context: dict[str, Any], targets: list[str]
) -> str:
    lines = [
        "# Fan-out: PostgreSQL's backends as the web tier grows (bench.fanout)",
        "",
        *conditions(context),
        "",
        *fanout_table(cells),
        "",
        "Targets:",
        "",
        *[f"- {line}" for line in targets],
        "",
    ]
    return "\n".join(lines)


_PANELS = (
    ("rps_median", "req/s, 2xx (median)"),
    ("failed_max", "failed requests (worst round)"),
    ("backends_max", "PostgreSQL backends (peak)"),
    ("pss_mib_median", "backends' memory, PSS MiB"),
)


def chart(cells: Sequence[FanCell], path: Path) -> str | None:
    """One panel per measure, web threads on x, a line per configuration; None
    if matplotlib is missing (then say what to install)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install matplotlib==3.11.2"
    configs = list(dict.fromkeys(c.config for c in cells))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (field, title) in zip(axes.flat, _PANELS, strict=True):
        for config in configs:
            mine = sorted(
                (c for c in cells if c.config == config), key=lambda c: c.threads
            )
            ax.plot(
                [c.threads for c in mine],
                [getattr(c, field) for c in mine],
                marker="o",
                label=config,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({c.threads for c in cells}))
        ax.set_xticklabels([str(t) for t in sorted({c.threads for c in cells})])
        ax.set_xlabel("web threads")
        ax.set_title(title)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def as_json(runs: Sequence[FanRun], cells: Sequence[FanCell]) -> dict[str, Any]:
    return {
        "runs": [asdict(r) for r in runs],
        "medians": [asdict(c) for c in cells],
    }


def runs_load(data: dict[str, Any]) -> list[FanRun]:
    return [FanRun(**r) for r in data["runs"]]
