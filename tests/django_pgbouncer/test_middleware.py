"""BackendLossMiddleware (django_pgbouncer/middleware.py) against real servers.

Each fault is shown twice: without the middleware (the harm: a 500) and with it (a
GET retried unseen, or a 503 with Retry-After). In-process tests break the backend
of one marked query of the session's stack; the gunicorn tests break a private
stack under bounded loopback load, as users meet it."""

import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connections
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from core.models import Post
from devstack.ephemeral import ephemeral_pgbouncer, ephemeral_stack
from devstack.process import Account, run_checked
from devstack.stack import PROJECT_DIR, web_child
from django_pgbouncer.faults import Fault
from tests.django_pgbouncer import middleware_urls
from tests.fixtures.stack import default_alias_through, web_env

MIDDLEWARE = "django_pgbouncer.middleware.BackendLossMiddleware"


# --- In process, against the session's servers: one marked backend broken. ---


def backend_terminate(url, marker, *, timeout=15.0):
    """Wait until the query tagged `marker` runs, then terminate its backend (as
    an operator, an OOM kill or a failover would). Returns how many it ended."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            ended = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE state = 'active' AND pid <> pg_backend_pid()"
                " AND query LIKE %s",
                [f"%/* {marker} */%"],
            ).fetchall()
            if ended:
                return len(ended)
            time.sleep(0.05)
    return 0


@pytest.fixture
def fault_site(settings):
    settings.ROOT_URLCONF = "tests.django_pgbouncer.middleware_urls"
    # The app's middleware as it ships (GET and HEAD retried), in place of the
    # site's subclass (config/middleware.py, which adds POST).
    settings.MIDDLEWARE = [
        MIDDLEWARE if m.endswith("BackendLossMiddleware") else m
        for m in settings.MIDDLEWARE
    ]
    middleware_urls.RUNS.clear()


@pytest.fixture
def without_middleware(settings, fault_site):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE]


def backends_terminate(url, marker, times):
    return [backend_terminate(url, marker) for _ in range(times)]


def request_with_terminated_backend(stack, method, path, marker, *, times=1):
    """`method path` on the test client while its marked backend is terminated
    (`times` times: a retry's too)."""
    url = stack.postgres.config.superuser_url("app").url()
    client = Client(raise_request_exception=False)
    with ThreadPoolExecutor(1) as pool:
        ended = pool.submit(backends_terminate, url, marker, times)
        response = getattr(client, method)(path)
        assert ended.result() == [1] * times
    # The test client keeps Django from closing broken connections after a request.
    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()
    return response


def samples():
    """This process's middleware counters, from /metrics."""
    text = Client().get("/metrics").content.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("django_pgbouncer_")
    }


def counted(before, after, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


def marker_new(kind):
    return f"{kind}_{uuid.uuid4().hex[:12]}"


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("view", ["read", "render"])
def test_harm_a_terminated_backend_fails_a_get(stack, without_middleware, view):
    marker = marker_new(view)
    response = request_with_terminated_backend(
        stack, "get", f"/faults/{view}/{marker}", marker
    )
    assert response.status_code == 500
    assert middleware_urls.RUNS[marker] == 1


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("view", ["read", "render"])
def test_a_get_whose_backend_is_terminated_is_retried_unseen(stack, fault_site, view):
    """`render`: the query runs while the TemplateResponse renders, after the view
    returned; Django 5.2 hands that error to process_exception too."""
    marker = marker_new(view)
    before = samples()
    response = request_with_terminated_backend(
        stack, "get", f"/faults/{view}/{marker}", marker
    )
    assert response.status_code == 200
    assert middleware_urls.RUNS[marker] == 2  # run again, once
    name = "django_pgbouncer_request_retries_total"
    assert counted(before, samples(), name, fault="backend_lost", outcome="ok") == 1


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("middleware", [False, True], ids=["harm", "fix"])
def test_a_loss_in_an_inner_middleware_is_retried_too(
    stack, settings, fault_site, middleware
):
    """A middleware inside ours that queries: Django turns its error into a 500
    without process_exception; got_request_exception tells ours."""
    inner = "tests.django_pgbouncer.middleware_urls.QueryingMiddleware"
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if middleware or m != MIDDLEWARE
    ] + [inner]
    marker = marker_new("inner")
    response = request_with_terminated_backend(
        stack, "get", f"/faults/middleware/{marker}", marker
    )
    expected = (200, 2) if middleware else (500, 1)
    assert (response.status_code, middleware_urls.RUNS[marker]) == expected


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
def test_a_retry_that_fails_too_gets_503(stack, fault_site):
    """Once only: a retry whose backend is lost as well is answered 503."""
    marker = marker_new("twice")
    before = samples()
    response = request_with_terminated_backend(
        stack, "get", f"/faults/read/{marker}?again=1", marker, times=2
    )
    after = samples()
    assert response.status_code == 503
    assert "Retry-After" in response
    assert middleware_urls.RUNS[marker] == 2
    retries = "django_pgbouncer_request_retries_total"
    assert counted(before, after, retries, fault="backend_lost", outcome="failed") == 1
    unavailable = "django_pgbouncer_unavailable_responses_total"
    reason = {"fault": "backend_lost", "reason": "retry_failed"}
    assert counted(before, after, unavailable, **reason) == 1


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
def test_harm_a_request_that_wrote_fails_with_500(stack, without_middleware):
    marker = marker_new("write")
    response = request_with_terminated_backend(
        stack, "get", f"/faults/write/{marker}", marker
    )
    assert response.status_code == 500


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_request_that_wrote_gets_503_and_is_not_retried(stack, fault_site, method):
    marker = marker_new("write")
    before = samples()
    response = request_with_terminated_backend(
        stack, method, f"/faults/write/{marker}", marker
    )
    assert response.status_code == 503
    assert response["Retry-After"] == str(Fault.BACKEND_LOST.retry_after)
    assert b"try again in" in response.content
    assert middleware_urls.RUNS[f"{marker}_write"] == 1
    assert Post.objects.filter(title=marker).count() == 1  # written once
    reason = "wrote" if method == "get" else "method"
    name = "django_pgbouncer_unavailable_responses_total"
    assert counted(before, samples(), name, fault="backend_lost", reason=reason) == 1


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
def test_harm_a_failure_inside_atomic_is_a_500(stack, without_middleware):
    marker = marker_new("atomic")
    response = request_with_terminated_backend(
        stack, "get", f"/faults/atomic/{marker}", marker
    )
    assert response.status_code == 500


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
def test_a_failure_inside_atomic_gets_503_and_is_not_retried(stack, fault_site):
    marker = marker_new("atomic")
    before = samples()
    response = request_with_terminated_backend(
        stack, "get", f"/faults/atomic/{marker}", marker
    )
    assert response.status_code == 503
    assert "Retry-After" in response
    assert middleware_urls.RUNS[marker] == 1
    name = "django_pgbouncer_unavailable_responses_total"
    assert counted(before, samples(), name, fault="backend_lost", reason="in_atomic")


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
def test_a_post_that_had_not_written_gets_503(stack, fault_site):
    """Only GET and HEAD are run again, whatever they did."""
    marker = marker_new("post")
    response = request_with_terminated_backend(
        stack, "post", f"/faults/read/{marker}", marker
    )
    assert response.status_code == 503
    assert middleware_urls.RUNS[marker] == 1


def pgbouncer_crash_and_restart(stack, bouncer, marker):
    """Once the marked query runs: PgBouncer killed (SIGKILL), and started again
    a second later, as a supervisor would. Returns whether the query was seen."""
    url = stack.postgres.config.superuser_url("app").url()
    deadline = time.monotonic() + 15
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE state = 'active'"
                " AND query LIKE %s",
                [f"%/* {marker} */%"],
            ).fetchone():
                break
            time.sleep(0.05)
        else:
            return False
    bouncer.child.signal(signal.SIGKILL)
    bouncer.child.process.wait(10)
    time.sleep(1)
    bouncer.start()
    return True


@pytest.mark.servers
@pytest.mark.parametrize("middleware", [False, True], ids=["harm", "fix"])
def test_a_get_in_flight_when_pgbouncer_crashes_waits_for_it_and_is_retried(
    stack, django_db_setup, django_db_blocker, settings, fault_site, middleware
):
    """Harm: the request in flight fails (500). Fix: the middleware waits for
    PgBouncer to take connections again (connection refused meanwhile), then runs
    the request once more."""
    if not middleware:
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE]
    marker = marker_new("crash")
    with (
        ephemeral_pgbouncer(stack, "test-middleware-crash-") as bouncer,
        django_db_blocker.unblock(),
        default_alias_through(bouncer.config.port),
        ThreadPoolExecutor(1) as pool,
    ):
        before = samples()
        crashed = pool.submit(pgbouncer_crash_and_restart, stack, bouncer, marker)
        response = Client(raise_request_exception=False).get(
            f"/faults/read/{marker}?sleep=5"
        )
        assert crashed.result()
        after = samples()
    name = "django_pgbouncer_request_retries_total"
    retried = counted(before, after, name, fault="backend_lost", outcome="ok")
    if middleware:
        assert (response.status_code, middleware_urls.RUNS[marker], retried) == (
            200,
            2,
            1,
        )
    else:
        assert (response.status_code, middleware_urls.RUNS[marker]) == (500, 1)


# --- Under gunicorn, on a private stack: faults as users meet them. ---

POOL = 4  # server connections; the overload tests hold them all
QUERY_WAIT_TIMEOUT = 2  # small, so a saturated pool answers within the test


@pytest.fixture(scope="module")
def private_stack():
    """PostgreSQL and PgBouncer of their own: these tests break them."""
    variables = {
        "DEFAULT_POOL_SIZE": str(POOL),
        "QUERY_WAIT_TIMEOUT": str(QUERY_WAIT_TIMEOUT),
        "MAX_CLIENT_CONN": "30",
    }
    with ephemeral_stack("test-middleware-", pgbouncer_variables=variables) as stack:
        env = {**web_env(stack), "DJANGO_SETTINGS_MODULE": "config.settings"}
        run_checked(
            [sys.executable, str(PROJECT_DIR / "manage.py"), "migrate", "-v", "0"],
            what="migrate",
            env=env,
        )
        yield stack


@contextmanager
def site(stack, *, middleware, **variables):
    """gunicorn (1 worker, 8 threads) serving the site and the fault views, with
    or without the middleware; yields its URL and its log."""
    env = {
        **web_env(stack),
        "DJANGO_SETTINGS_MODULE": "tests.django_pgbouncer.middleware_settings",
        "BACKEND_LOSS_MIDDLEWARE": "1" if middleware else "0",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "8",
        **variables,
    }
    child = web_child(stack, env, account=Account())
    child.start(timeout=60)
    try:
        yield stack.web_url, child.log
    finally:
        child.stop()


def fetch(url, *, timeout=30):
    """(status, headers, body) of a GET; bounded in time."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def metrics_of(base):
    _, _, body = fetch(base + "/metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name.startswith("django_pgbouncer_")
    }


class Terminator(threading.Thread):
    """Terminates the backend of marked queries as they run, each marker once (so
    a retried request is not hit again), until stopped or `limit` reached."""

    def __init__(self, url, *, limit=8):
        super().__init__(daemon=True)
        self.url, self.limit = url, limit
        self.ended: set[str] = set()
        self.stop = threading.Event()

    def run(self):
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set() and len(self.ended) < self.limit:
                rows = conn.execute(
                    "SELECT pid, substring(query from '/\\* (load_[a-f0-9]+) \\*/')"
                    " FROM pg_stat_activity WHERE state = 'active'"
                    " AND query LIKE '%%/* load_%%' AND pid <> pg_backend_pid()"
                ).fetchall()
                for pid, marker in rows:
                    if marker and marker not in self.ended:
                        self.ended.add(marker)
                        conn.execute("SELECT pg_terminate_backend(%s)", [pid])
                        break  # one at a time, spread over the run
                self.stop.wait(0.25)


def load_with_terminations(stack, base, *, clients=6, each=6):
    """`clients` threads, `each` GETs of a 0.4 s query apiece, while backends are
    terminated under them. Returns the statuses and the markers ended."""
    terminator = Terminator(stack.postgres.config.superuser_url("app").url())

    def client(_):
        return [
            fetch(f"{base}/faults/read/{marker_new('load')}?sleep=0.4")[0]
            for _ in range(each)
        ]

    terminator.start()
    try:
        with ThreadPoolExecutor(clients) as pool:
            statuses = [s for batch in pool.map(client, range(clients)) for s in batch]
    finally:
        terminator.stop.set()
        terminator.join(10)
    return statuses, terminator.ended


@pytest.mark.servers
def test_terminated_backends_under_load(private_stack):
    """Harm: each request whose backend dies answers 500. Fix: every GET succeeds,
    each terminated one retried once on a fresh connection."""
    with site(private_stack, middleware=False) as (base, _):
        statuses, ended = load_with_terminations(private_stack, base)
    assert len(ended) >= 2
    assert 1 <= statuses.count(500) <= len(ended)
    assert set(statuses) == {200, 500}

    with site(private_stack, middleware=True) as (base, _):
        statuses, ended = load_with_terminations(private_stack, base)
        after = metrics_of(base)
    assert len(ended) >= 2
    assert statuses == [200] * len(statuses)
    name = "django_pgbouncer_request_retries_total"
    retried = after.get((name, (("fault", "backend_lost"), ("outcome", "ok"))), 0)
    # A backend whose query ended just before the terminate failed nobody.
    assert 1 <= retried <= len(ended)
    assert not any(k[0].startswith("django_pgbouncer_unavailable") for k in after)


@contextmanager
def pool_held(stack):
    """Every server connection of the pool taken by an open transaction."""
    holders = [psycopg.connect(stack.pooled_url.url()) for _ in range(POOL)]
    try:
        for conn in holders:
            conn.execute("SELECT 1")  # BEGIN is implicit: the server stays linked
        yield
    finally:
        for conn in holders:
            conn.close()


@contextmanager
def clients_full(stack):
    """Every client slot of PgBouncer (max_client_conn) taken."""
    fillers, refusal = [], ""
    try:
        for _ in range(40):
            try:
                fillers.append(psycopg.connect(stack.pooled_url.url()))
            except psycopg.OperationalError as error:
                refusal = str(error)
                break
        assert "max_client_conn" in refusal, "PgBouncer took 40 clients, limit 30"
        yield
    finally:
        for conn in fillers:
            conn.close()


def overload_met(base, overload, stack, *, requests=4):
    """`requests` concurrent GETs of the home page, and /readyz, while
    `overload` lasts. Returns the pages' answers and /readyz's."""
    with overload(stack), ThreadPoolExecutor(requests + 1) as pool:
        pages = pool.map(lambda _: fetch(base + "/"), range(requests))
        ready = pool.submit(fetch, base + "/readyz")
        answers = list(pages)
        ready_status, _, ready_body = ready.result()
    return answers, (ready_status, json.loads(ready_body)["status"])


OVERLOADS = {
    "query_wait_timeout": (pool_held, {}),
    # Without kept connections, each request asks PgBouncer for a client slot.
    "max_client_conn": (clients_full, {"CONN_MAX_AGE": "0"}),
}


@pytest.mark.servers
@pytest.mark.parametrize("fault", sorted(OVERLOADS))
def test_overload_is_answered_503_with_retry_after(private_stack, fault):
    """Harm: PgBouncer's refusal is a 500. Fix: 503, Retry-After, the short page;
    /readyz says pool_saturated meanwhile; no worker killed by its timeout."""
    overload, variables = OVERLOADS[fault]
    with site(private_stack, middleware=False, **variables) as (base, _):
        answers, _ = overload_met(base, overload, private_stack)
    assert [status for status, _, _ in answers] == [500] * len(answers)

    with site(private_stack, middleware=True, **variables) as (base, log):
        answers, ready = overload_met(base, overload, private_stack)
        after = metrics_of(base)
        assert fetch(base + "/")[0] == 200  # the overload over, the site serves
    assert [status for status, _, _ in answers] == [503] * len(answers)
    for _, headers, body in answers:
        assert headers["Retry-After"] == str(Fault(fault).retry_after)
        assert b"try again in" in body
    assert ready == (503, "pool_saturated")
    name = "django_pgbouncer_unavailable_responses_total"
    key = (name, (("fault", fault), ("reason", "not_retryable")))
    assert after.get(key) == len(answers)
    assert "WORKER TIMEOUT" not in log.read_text()
