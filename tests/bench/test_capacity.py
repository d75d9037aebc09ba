"""docs/capacity.md's model: a table of cases, and the checks' formula held
against what bench.fanout measured (results/fanout.json, committed)."""

import json

import pytest

from bench.capacity import RESULTS, Measured, capacity_need, measured_inputs
from bench.fanout_report import TIERS, cells_of, runs_load
from django_pgbouncer.checks import Capacity, capacity_problems

COSTS = Measured(
    xacts_per_request=1.0, xact_ms=0.5, pgbouncer_tps=36_000, server_tps=62_000
)


@pytest.mark.parametrize(
    ("rate", "processes", "threads", "expected"),
    [
        (1_000, 2, 4, (8, 0.5, 1, 4, 1, 1, 0)),
        (10_000, 8, 32, (256, 5.0, 10, 13, 1, 1, 0)),
        (100_000, 64, 32, (2048, 50.0, 34, 105, 3, 2, 1)),
    ],
    ids=["small", "the-largest-tier", "many-nodes"],
)
def test_capacity_need(rate, processes, threads, expected):
    need = capacity_need(
        rate=rate, processes=processes, threads=threads, measured=COSTS
    )
    assert (
        need.clients,
        need.busy_backends,
        need.pool,
        need.backends,
        need.pgbouncer_processes,
        need.servers,
        need.replicas,
    ) == expected


def fanout():
    data = json.loads((RESULTS / "fanout.json").read_text())
    return data["context"], cells_of(runs_load(data))


def budget(context, threads, **changes):
    """The checks' Capacity for the fan-out's tier of `threads` and its servers."""
    tier = next(t for t in TIERS if t.threads == threads)
    pool = context["pool"]
    base = {
        "processes": tier.processes,
        "threads": tier.threads_per_process,
        "pooled_aliases": 1,
        "direct_aliases": 1,
        "max_client_conn": pool["max_client_conn"],
        "default_pool_size": pool["default_pool_size"],
        "reserve_pool_size": pool["reserve_pool_size"],
        "pools": 1,
        "max_db_connections": 0,
        "max_connections": context["max_connections"],
        "superuser_reserved_connections": 3,
    }
    return Capacity(**{**base, **changes})


def test_through_pgbouncer_the_checks_foresaw_what_was_measured():
    """No E007 or E008 for ours at any tier, and indeed no more backends than
    PgBouncer's side of the budget, and every request the site read answered
    (a refused client or an exhausted pool is the site's 503: a non-2xx) and in
    time. wrk's read errors are not the budget's: gunicorn closing a kept
    connection as idle while a starved wrk sends on it (bench/notes.py)."""
    context, cells = fanout()
    data = json.loads((RESULTS / "fanout.json").read_text())
    ours = [c for c in cells if c.config.startswith("6")]
    assert {c.threads for c in ours} == {t.threads for t in TIERS}
    for cell in ours:
        capacity = budget(context, cell.threads)
        assert capacity_problems(capacity) == []
        assert cell.backends_max <= capacity.pool_servers, cell
    for run in [r for r in data["runs"] if r["config"].startswith("6")]:
        sockets = run["socket_errors"]
        assert (run["non_2xx"], sockets["connect"], sockets["timeout"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("key", "fails_when_over"),
    [("3. ", True), ("4. ", False)],
    ids=["direct", "native-pool"],
)
def test_straight_to_postgresql_the_formula_predicts_the_backends(key, fails_when_over):
    """One backend per web thread (native pool: max_size = the threads), until
    PostgreSQL's slots run out: there E008 fires. Then direct connections fail
    their requests (the site's 500s: non-2xx); the native pool makes its threads
    wait for the connections it could open."""
    context, cells = fanout()
    data = json.loads((RESULTS / "fanout.json").read_text())
    mine = [c for c in cells if c.config.startswith(key)]
    assert {c.threads for c in mine} == {t.threads for t in TIERS}
    for cell in mine:
        capacity = budget(
            context,
            cell.threads,
            pooled_aliases=0,
            direct_aliases=0,
            kept_direct_aliases=1,
        )
        over = capacity.backends > capacity.server_slots
        # At most one backend per thread, or per pool slot: a thread that served
        # no request opens none.
        assert cell.backends_max <= min(capacity.backends, capacity.server_slots)
        if over:
            # Every slot PostgreSQL had (the sampler holds a reserved one).
            assert cell.backends_max >= capacity.server_slots - 2, cell
        elif cell.threads > context["pool"]["limit"]:
            # Past what PgBouncer's pool would have held.
            assert cell.backends_max > context["pool"]["limit"], cell
        assert [i for i, _ in capacity_problems(capacity)] == (
            ["django_pgbouncer.E008"] if over else []
        )
        non_2xx = max(
            r["non_2xx"]
            for r in data["runs"]
            if r["config"] == cell.config and r["threads"] == cell.threads
        )
        assert (non_2xx > 0) is (over and fails_when_over), cell


def test_littles_law_on_the_measured_costs_stays_within_the_pool():
    """The model's busy backends at each measured rate, against the pool that
    served it without a failure."""
    context, cells = fanout()
    costs = measured_inputs()
    for cell in [c for c in cells if c.config.startswith("6. ")]:
        tier = next(t for t in TIERS if t.threads == cell.threads)
        need = capacity_need(
            rate=cell.rps_median,
            processes=tier.processes,
            threads=tier.threads_per_process,
            measured=costs,
        )
        assert need.clients == cell.threads
        assert need.pool <= context["pool"]["limit"], (cell, need)
        assert need.busy_backends <= cell.backends_max, (cell, need)
        # And on the cell's own costs, inflated by the CPU the tier shares.
        busy = cell.rps_median * cell.xacts_per_request * cell.xact_ms / 1000
        assert busy <= cell.backends_max, cell
