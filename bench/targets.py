"""The targets the harness and bench.fanout check, computed from the medians of
the same run.

Pure: summaries in, one "PASS ..." / "FAIL ..." / "SKIP ..." line per target out.
"""

from __future__ import annotations

from collections.abc import Sequence

from .fanout_report import FanCell
from .report import Summary

OURS, SEED, DIRECT_PERSISTENT, CEILING = "6", "1", "3", "7"
DIRECT = ("2", "3", "4")
LIST = "list"
FEW, MANY = 16, 1000
# config/gunicorn.py's defaults: WEB_CONCURRENCY x GUNICORN_THREADS.
WEB_THREADS = 2 * 4


def _key(label: str) -> str:
    return label.split(". ", 1)[0]


def _cell(
    cells: Sequence[Summary], key: str, page: str, clients: int
) -> Summary | None:
    for cell in cells:
        if _key(cell.config) == key and cell.page == page and cell.clients == clients:
            return cell
    return None


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _ratio_target(
    cells: Sequence[Summary], other: str, factor: float, name: str
) -> str:
    ours, theirs = _cell(cells, OURS, LIST, FEW), _cell(cells, other, LIST, FEW)
    what = f"ours (6) at {FEW} clients >= {factor:g}x {name} ({other}), list page"
    if ours is None or theirs is None:
        return f"SKIP {what}: not measured in this run"
    ratio = ours.rps_median / theirs.rps_median if theirs.rps_median else 0.0
    return (
        f"{_verdict(ratio >= factor)} {what}: {ours.rps_median:,.0f} vs "
        f"{theirs.rps_median:,.0f} req/s = {ratio:.2f}x"
    )


def _many_clients_target(cells: Sequence[Summary]) -> str:
    # The pool bound is bench.fanout's target: this web tier (8 threads) cannot
    # open more backends than PgBouncer's pool, whatever the pooler does.
    what = f"ours (6) at {MANY} clients: no errors"
    ours = [c for c in cells if _key(c.config) == OURS and c.clients == MANY]
    if not ours:
        return f"SKIP {what}: {MANY} clients not measured in this run"
    errors = sum(c.errors_max for c in ours)
    return (
        f"{_verdict(errors == 0)} {what}: errors (worst round) "
        + ", ".join(f"{c.page} {c.errors_max}" for c in ours)
        + f"; peak PostgreSQL connections {max(c.peak_pg for c in ours)}"
    )


def _direct_many_clients(cells: Sequence[Summary]) -> list[str]:
    """Straight to PostgreSQL, nothing bounds the backends but the web tier."""
    lines = []
    for key in DIRECT:
        direct = [c for c in cells if _key(c.config) == key and c.clients == MANY]
        if direct:
            lines.append(
                f"INFO {direct[0].config} at {MANY} clients: peak "
                f"{max(c.peak_pg for c in direct)} PostgreSQL connections "
                f"(one per gunicorn thread: {WEB_THREADS}), errors (worst round) "
                + ", ".join(f"{c.page} {c.errors_max}" for c in direct)
            )
    return lines


def _bound(cells: Sequence[Summary]) -> list[str]:
    """What no database path can beat: the ceiling over the seed."""
    ceiling, seed = _cell(cells, CEILING, LIST, FEW), _cell(cells, SEED, LIST, FEW)
    if ceiling is None or seed is None or not seed.rps_median:
        return []
    return [
        f"INFO the ceiling (7) itself is {ceiling.rps_median / seed.rps_median:.2f}x "
        f"the seed's setup (1) at {FEW} clients: ours can reach 6x only if that is "
        "above 6"
    ]


def targets_evaluate(
    cells: Sequence[Summary], *, pool: dict[str, int], quick: bool
) -> list[str]:
    lines = [
        _ratio_target(cells, SEED, 6.0, "the seed's setup"),
        _ratio_target(cells, DIRECT_PERSISTENT, 0.95, "direct persistent"),
        _many_clients_target(cells),
        *_direct_many_clients(cells),
        _ratio_target(cells, CEILING, 0.6, "the ceiling"),
    ]
    lines += _bound(cells)
    if quick:
        lines.append(f"INFO --quick: {FEW} clients, list page only")
    return lines


# --- bench.fanout: the web tier grows, PostgreSQL's backends must not ----------

FAN_OURS = "6"
FAN_ALTERNATIVES = ("3", "4")  # direct persistent, Django's native pool


def _fan_of(cells: Sequence[FanCell], key: str) -> list[FanCell]:
    return sorted((c for c in cells if _key(c.config) == key), key=lambda c: c.threads)


def fan_ours_target(cells: Sequence[FanCell], *, pool: int) -> str:
    ours = _fan_of(cells, FAN_OURS)
    what = (
        f"ours ({FAN_OURS}): 0 failed requests at every tier, PostgreSQL backends "
        f"<= PgBouncer's pool ({pool})"
    )
    if len(ours) < 2 or max(c.threads for c in ours) <= pool:
        return f"SKIP {what}: no tier larger than the pool measured"
    passed = all(c.failed_max == 0 and c.backends_max <= pool for c in ours)
    return f"{_verdict(passed)} {what}: " + ", ".join(
        f"{c.threads} threads {c.failed_max} failed, {c.backends_max} backends"
        for c in ours
    )


def fan_growth_lines(cells: Sequence[FanCell], *, pool: int) -> list[str]:
    """The alternatives' backends grow with the tier, past what ours holds."""
    lines = []
    for key in FAN_ALTERNATIVES:
        mine = _fan_of(cells, key)
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        grows = large.backends_max > small.backends_max and large.backends_max > pool
        lines.append(
            f"{_verdict(grows)} {small.config}: backends grow with the tier, past "
            f"the pool ({pool}): {small.threads} threads {small.backends_max}, "
            f"{large.threads} threads {large.backends_max} (failed "
            f"{large.failed_max} in the worst round)"
        )
    return lines


def fan_targets_evaluate(cells: Sequence[FanCell], *, pool: int) -> list[str]:
    others = [
        f"INFO {c.config} at {c.threads} threads: {c.failed_max} failed (worst "
        f"round), {c.backends_max} backends"
        for c in cells
        if _key(c.config) not in (FAN_OURS, *FAN_ALTERNATIVES)
    ]
    ours = fan_ours_target(cells, pool=pool)
    return [ours, *fan_growth_lines(cells, pool=pool), *others]
