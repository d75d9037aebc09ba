"""/readyz and /metrics as seen from outside: the status word for anyone; the
detail and the metrics for the METRICS_TOKEN's holders and local callers (loopback,
not relayed by a proxy); one readiness check a second per process, however many
probes come."""

import json
import math
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client

from django_pgbouncer.observe.readiness import CACHE_SECONDS, readiness_cache_clear
from tests.fixtures.stack import web_env

pytestmark = pytest.mark.servers

TOKEN = "t0ken-for-the-tests"
REMOTE = "203.0.113.9"
PROXIED = [
    {"HTTP_X_FORWARDED_FOR": REMOTE},
    {"HTTP_FORWARDED": f"for={REMOTE};proto=https"},
    {"HTTP_X_REAL_IP": REMOTE},
    {"HTTP_X_FORWARDED_PROTO": "https"},
]
PROXIED_IDS = ["x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-proto"]


@pytest.fixture(autouse=True)
def fresh_readiness():
    readiness_cache_clear()
    yield
    readiness_cache_clear()


@pytest.fixture
def site(settings, stack, django_db_setup):
    settings.PGBOUNCER_ADMIN_URL = stack.admin_console_url.url()
    settings.METRICS_TOKEN = TOKEN
    return settings


def readyz(remote, **headers):
    response = Client(REMOTE_ADDR=remote).get("/readyz", **headers)
    return response.status_code, json.loads(response.content)


@pytest.mark.parametrize(
    ("remote", "headers", "detail"),
    [
        (REMOTE, {}, False),
        (REMOTE, {"HTTP_AUTHORIZATION": "Bearer wrong"}, False),
        (REMOTE, {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, True),
        ("127.0.0.1", {}, True),
        ("::1", {}, True),
        *[("127.0.0.1", h, False) for h in PROXIED],
        ("127.0.0.1", {**PROXIED[0], "HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, True),
    ],
    ids=[
        "remote",
        "remote-wrong-token",
        "remote-token",
        "loopback",
        "loopback-v6",
        *[f"proxied-{i}" for i in PROXIED_IDS],
        "proxied-token",
    ],
)
def test_readyz_detail_is_for_token_holders_and_local_callers(
    site, remote, headers, detail
):
    code, body = readyz(remote, **headers)
    assert code == 200
    if detail:
        assert body["status"] == "ready"
        assert {p["database"] for p in body["pools"]} >= {"app"}
    else:
        assert body == {"status": "ready"}


def test_a_remote_caller_learns_no_host_port_or_user(site, stack):
    """The console's error names its host, port and user: for operators only."""
    console = stack.admin_console_url
    site.PGBOUNCER_ADMIN_URL = console.with_(port=9).url()
    _, inside = readyz("127.0.0.1")
    assert "did not answer" in inside["console"]
    assert console.user in inside["console"]
    code, outside = readyz(REMOTE)
    assert (code, outside) == (200, {"status": "ready"})


@pytest.mark.parametrize("headers", PROXIED, ids=PROXIED_IDS)
def test_metrics_refuse_a_proxied_loopback_request(site, headers):
    site.METRICS_TOKEN = ""
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", **headers)
    assert response.status_code == 403


def test_a_declared_proxy_leaves_no_caller_local(site):
    """A proxy on this host may relay without a forwarding header: once one is
    declared, the token is the only way in."""
    site.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    site.METRICS_TOKEN = ""
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403
    assert readyz("127.0.0.1") == (200, {"status": "ready"})
    site.METRICS_TOKEN = TOKEN
    bearer = f"Bearer {TOKEN}"
    response = Client(REMOTE_ADDR="127.0.0.1").get(
        "/metrics", headers={"Authorization": bearer}
    )
    assert response.status_code == 200
    assert "pools" in readyz("127.0.0.1", HTTP_AUTHORIZATION=bearer)[1]


def console_logins(stack):
    """PgBouncer's own count of logins to its admin console (log_connections)."""
    text = stack.pgbouncer.log.read_text(errors="replace")
    return text.count("login attempt: db=pgbouncer ")


def probe(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, json.loads(response.read())["status"]


def test_a_flood_of_probes_logs_in_once_a_second_per_process(web, stack):
    """Harm: each probe logged in to PgBouncer and its console. Now a process
    checks at most once per CACHE_SECONDS; the probes in between share it."""
    processes = int(web_env(stack)["WEB_CONCURRENCY"])
    probes = 96
    before = console_logins(stack)
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(probe, [web + "/readyz"] * probes))
    elapsed = time.monotonic() - started
    time.sleep(0.5)  # PgBouncer's log line may trail the answer
    logins = console_logins(stack) - before
    assert answers == [(200, "ready")] * probes
    assert 1 <= logins <= processes * (math.ceil(elapsed / CACHE_SECONDS) + 1)
    assert logins < probes / 4
