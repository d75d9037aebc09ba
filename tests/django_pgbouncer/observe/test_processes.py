"""Several PgBouncer processes on one port: the pool state sums over them and shows
each one (asked of each process's own console), true to what each console says."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from django.test import Client
from django.urls import reverse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict

from django_pgbouncer.observe import ReadyStatus, console_show, readiness_check
from django_pgbouncer.observe.pool_state import (
    PoolView,
    console_address,
    pool_state,
    pool_views_sum,
)
from django_pgbouncer.observe.process_metrics import (
    ALL_PROCESSES,
    PgBouncerProcessesCollector,
)

VIEW = PoolView(
    database="app",
    user="app",
    mode="transaction",
    clients_active=1,
    clients_waiting=0,
    servers_active=1,
    servers_idle=1,
    servers_used=0,
    pool_size=2,
    maxwait_seconds=0.0,
    queries_per_second=10,
    transactions_per_second=10,
    avg_query_ms=1.0,
    avg_wait_ms=0.0,
    total_query_count=100,
    total_xact_count=90,
)


@pytest.mark.parametrize(
    ("second", "field", "summed"),
    [
        ({"clients_active": 4}, "clients_active", 5),
        ({"clients_waiting": 3}, "clients_waiting", 3),
        ({"pool_size": 2}, "pool_size", 4),
        ({"total_query_count": 50}, "total_query_count", 150),
        ({"maxwait_seconds": 2.5}, "maxwait_seconds", 2.5),
        ({"avg_query_ms": 4.0, "queries_per_second": 30}, "avg_query_ms", 3.25),
        ({"avg_query_ms": 3.0, "queries_per_second": 0}, "avg_query_ms", 1.0),
        ({"at_limit": True}, "at_limit", True),
        (
            {"trouble": ("2 clients waiting",)},
            "trouble",
            ("process 127.0.1.2:6432: 2 clients waiting",),
        ),
    ],
    ids=[
        "clients-added",
        "waiting-added",
        "pool-sizes-added",
        "totals-added",
        "longest-wait",
        "average-by-rate",
        "average-of-the-busy-one",
        "one-full-pool",
        "trouble-named",
    ],
)
def test_pools_are_summed_over_processes(second, field, summed):
    (pool,) = pool_views_sum(
        [("127.0.1.1:6432", [VIEW]), ("127.0.1.2:6432", [replace(VIEW, **second)])]
    )
    assert getattr(pool, field) == summed


def test_a_pool_only_one_process_has_is_kept():
    other = replace(VIEW, database="other")
    pools = pool_views_sum([("a:1", [VIEW]), ("b:1", [VIEW, other])])
    assert [(p.database, p.clients_active) for p in pools] == [("app", 2), ("other", 1)]


def test_a_process_is_named_by_its_console_address_without_password():
    url = "postgres://stats:s3cret@127.0.1.2:6432/pgbouncer"
    assert console_address(url) == "127.0.1.2:6432"


def app_clients(url: str) -> int:
    pools = console_show(url, "POOLS")
    return next((p.cl_active for p in pools if p.database == "app"), 0)


@pytest.mark.servers
def test_the_state_sums_what_each_console_says(processes):
    conns = [psycopg.connect(processes.url) for _ in range(12)]
    try:
        state = pool_state(None, admin_urls=processes.consoles)
        each = [app_clients(url) for url in processes.consoles]
    finally:
        for conn in conns:
            conn.close()
    assert state.reachable
    assert not state.trouble
    addresses = [p.address for p in state.processes]
    assert addresses == [console_address(u) for u in processes.consoles]
    assert addresses[0].startswith("127.0.1.1:")
    shown = [
        next(v.clients_active for v in p.pools if v.database == "app")
        for p in state.processes
    ]
    assert shown == each
    assert all(count > 0 for count in each)  # the shared port reached both
    (app,) = [p for p in state.pools if p.database == "app"]
    assert app.clients_active == sum(each) == 12
    assert app.pool_size == 2 * 2


@pytest.mark.servers
def test_a_process_down_is_trouble_and_the_others_still_show(processes):
    second = processes.bouncers.processes[1]
    second.stop()
    try:
        state = pool_state(None, admin_urls=processes.consoles)
    finally:
        second.restart()
    assert state.reachable
    assert state.trouble
    assert [p.reachable for p in state.processes] == [True, False]
    assert "did not answer" in state.processes[1].error
    password = urlsplit(processes.consoles[1]).password
    assert password
    assert password not in state.error
    assert pool_state(None, admin_urls=processes.consoles).processes[1].reachable


def exposition(consoles: list[str]) -> dict[tuple[str, frozenset[Any]], float]:
    registry = CollectorRegistry()
    registry.register(PgBouncerProcessesCollector(consoles))
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.servers
def test_metrics_label_each_process_and_add_them_up(processes):
    conns = [psycopg.connect(processes.url) for _ in range(12)]
    try:
        metrics = exposition(processes.consoles)
        each = [app_clients(url) for url in processes.consoles]
    finally:
        for conn in conns:
            conn.close()
    names = [console_address(u) for u in processes.consoles]
    name = "pgbouncer_pools_client_active_connections"
    shown = [
        metrics[
            (name, frozenset({"database": "app", "user": "app", "process": n}.items()))
        ]
        for n in names
    ]
    assert shown == each
    total = {"database": "app", "user": "app", "process": ALL_PROCESSES}
    assert metrics[(name, frozenset(total.items()))] == sum(each) == 12
    up = [metrics[("pgbouncer_up", frozenset({"process": n}.items()))] for n in names]
    assert up == [1, 1]
    assert metrics[("pgbouncer_up", frozenset({"process": ALL_PROCESSES}.items()))] == 2
    versions = [k for k in metrics if k[0] == "pgbouncer_version_info"]
    assert sorted(dict(k[1])["process"] for k in versions) == sorted(names)
    for url in processes.consoles:
        assert str(urlsplit(url).password) not in str(metrics)


@pytest.fixture
def consoles_configured(settings, processes):
    settings.PGBOUNCER_ADMIN_URLS = " ".join(processes.consoles)
    return processes


@pytest.mark.servers
@pytest.mark.django_db
def test_the_metrics_view_shows_each_process_and_their_sum(consoles_configured):
    text = Client().get("/metrics").content.decode()
    metrics = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    names = [console_address(u) for u in consoles_configured.consoles]
    for name in names:
        assert metrics[("pgbouncer_up", frozenset({"process": name}.items()))] == 1
    assert metrics[("pgbouncer_up", frozenset({"process": ALL_PROCESSES}.items()))] == 2


@pytest.mark.servers
@pytest.mark.django_db
def test_the_dashboard_shows_each_process_and_their_sum(
    consoles_configured, client, django_user_model
):
    user = django_user_model.objects.create_user("op", password="x", is_staff=True)
    client.force_login(user)
    conns = [psycopg.connect(consoles_configured.url) for _ in range(6)]
    try:
        state = client.get(reverse("pgbouncer-dashboard-state")).json()
        html = client.get(reverse("pgbouncer-dashboard")).content.decode()
    finally:
        for conn in conns:
            conn.close()
    names = [console_address(u) for u in consoles_configured.consoles]
    assert [p["address"] for p in state["processes"]] == names
    (app,) = [p for p in state["pools"] if p["database"] == "app"]
    assert app["clients_active"] == 6
    assert sum(p["clients_active"] for p in state["processes"]) == 6
    for name in names:
        assert f'data-process="{name}"' in html
    assert 'id="pgb-processes" hidden' not in html


@pytest.mark.servers
def test_readiness_looks_at_every_process(processes):
    """Ready through the shared port with each process's console asked; one
    process down leaves the site ready: the port still serves."""
    info = conninfo_to_dict(processes.url)
    ready = readiness_check(
        conninfo=info, admin_url=None, admin_urls=processes.consoles
    )
    assert ready.status == ReadyStatus.READY
    assert ready.console == "ok"
    second = processes.bouncers.processes[1]
    second.stop()
    try:
        ready = readiness_check(
            conninfo=info, admin_url=None, admin_urls=processes.consoles
        )
    finally:
        second.restart()
    assert ready.status == ReadyStatus.READY  # the other process answers
