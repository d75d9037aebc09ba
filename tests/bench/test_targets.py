"""bench.targets: verdicts from the medians of one run (no servers, no load)."""

import pytest

from bench.report import Summary
from bench.targets import targets_evaluate

LABELS = {
    "1": "1. seed: runserver, CONN_MAX_AGE=0, PgBouncer",
    "2": "2. gunicorn, direct, CONN_MAX_AGE=0",
    "3": "3. gunicorn, direct, CONN_MAX_AGE=600",
    "6": "6. ours: make run's defaults, PgBouncer",
    "6a": "6a. ours + reuse_port",
    "7": "7. ceiling: rows in memory, no database",
}
POOL = {"limit": 20}


def cell(key, rps, *, page="list", clients=16, errors=0, peak=5):
    return Summary(
        config=LABELS[key],
        page=page,
        clients=clients,
        rounds=3,
        rps_median=rps,
        rps_min=rps,
        rps_max=rps,
        p50_ms=10.0,
        p99_ms=50.0,
        errors_median=errors,
        errors_max=errors,
        peak_pg=peak,
        cpu_pgbouncer_s=0.1,
        cpu_postgres_s=0.1,
    )


def verdict(lines, start):
    (line,) = [line for line in lines if start in line]
    return line


@pytest.mark.parametrize(
    ("cells", "target", "expected"),
    [
        ([cell("6", 600), cell("1", 100)], "6x the seed", "PASS"),
        ([cell("6", 599), cell("1", 100)], "6x the seed", "FAIL"),
        ([cell("6", 95), cell("3", 100)], "0.95x direct", "PASS"),
        ([cell("6", 94), cell("3", 100)], "0.95x direct", "FAIL"),
        ([cell("6", 60), cell("7", 100)], "0.6x the ceiling", "PASS"),
        ([cell("6", 59), cell("7", 100)], "0.6x the ceiling", "FAIL"),
        ([cell("6", 100), cell("1", 0)], "6x the seed", "FAIL"),
        ([cell("6", 600)], "6x the seed", "SKIP"),
        ([cell("6a", 600), cell("1", 100)], "6x the seed", "SKIP"),
        ([cell("6", 600, clients=256), cell("1", 100)], "6x the seed", "SKIP"),
        ([cell("6", 600, page="detail"), cell("1", 100)], "6x the seed", "SKIP"),
    ],
    ids=[
        "seed-at-6x",
        "seed-below-6x",
        "direct-at-0.95x",
        "direct-below-0.95x",
        "ceiling-at-0.6x",
        "ceiling-below-0.6x",
        "seed-zero-req-s",
        "seed-not-measured",
        "a-variant-is-not-ours",
        "other-client-count-only",
        "detail-page-only",
    ],
)
def test_ratio_targets(cells, target, expected):
    line = verdict(targets_evaluate(cells, pool=POOL, quick=False), target)
    assert line.split(" ", 1)[0] == expected


def test_ratio_target_names_both_figures():
    lines = targets_evaluate([cell("6", 835), cell("3", 843)], pool=POOL, quick=False)
    assert verdict(lines, "direct persistent").endswith(
        "list page: 835 vs 843 req/s = 0.99x"
    )


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ([cell("6", 1, clients=1000), cell("6", 1, clients=1000, page="d")], "PASS"),
        ([cell("6", 1, clients=1000, peak=20)], "PASS"),
        ([cell("6", 1, clients=1000, peak=21)], "PASS"),
        ([cell("6", 1, clients=1000, errors=1)], "FAIL"),
        (
            [
                cell("6", 1, clients=1000),
                cell("6", 1, clients=1000, page="d", errors=3),
            ],
            "FAIL",
        ),
        ([cell("6", 1, clients=16)], "SKIP"),
    ],
    ids=[
        "clean",
        "peak-at-pool-size",
        "peak-is-fanouts-target",
        "errors",
        "errors-on-one-page",
        "not-measured",
    ],
)
def test_many_clients_target(cells, expected):
    line = verdict(targets_evaluate(cells, pool=POOL, quick=False), "1000 clients: no")
    assert "<=" not in line
    assert line.split(" ", 1)[0] == expected


def test_direct_configurations_at_many_clients_are_reported_not_judged():
    cells = [cell("2", 1, clients=1000, peak=8, errors=2)]
    line = verdict(targets_evaluate(cells, pool=POOL, quick=False), LABELS["2"])
    assert line == (
        f"INFO {LABELS['2']} at 1000 clients: peak 8 PostgreSQL connections "
        "(one per gunicorn thread: 8), errors (worst round) list 2"
    )


@pytest.mark.parametrize(
    ("cells", "bound"),
    [
        ([cell("7", 550), cell("1", 100)], "5.50x"),
        ([cell("7", 550)], None),
        ([cell("7", 550), cell("1", 0)], None),
    ],
    ids=["both-measured", "no-seed", "seed-zero-req-s"],
)
def test_the_ceiling_bounds_what_ours_can_reach(cells, bound):
    lines = targets_evaluate(cells, pool=POOL, quick=False)
    found = [line for line in lines if line.startswith("INFO the ceiling")]
    assert [bound in line for line in found] == ([True] if bound else [])


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "full"])
def test_quick_runs_say_what_they_left_out(quick):
    lines = targets_evaluate([], pool=POOL, quick=quick)
    said = "INFO --quick: 16 clients, list page only" in lines
    assert said is quick
