"""/metrics: restricted, in pgbouncer_exporter's names, true to what PgBouncer says,
and summed across gunicorn's workers."""

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from django_pgbouncer.errors import SessionStateError
from tests.fixtures.stack import POOL_SIZE, console_rows

pytestmark = pytest.mark.servers


def samples(text):
    """{(name, frozenset(labels)): value} from the exposition text."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics, metric, **labels):
    return metrics[(metric, frozenset(labels.items()))]


@pytest.fixture
def admin_configured(settings, stack):
    settings.PGBOUNCER_ADMIN_URL = stack.admin_console_url.url()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("token", "remote", "header", "status"),
    [
        ("", "127.0.0.1", None, 200),
        ("", "::1", None, 200),
        ("", "10.1.2.3", None, 403),
        ("t0ken", "127.0.0.1", None, 401),
        ("t0ken", "10.1.2.3", "Bearer wrong", 401),
        ("t0ken", "10.1.2.3", "Bearer t0ken", 200),
    ],
    ids=[
        "loopback",
        "loopback-v6",
        "remote-no-token",
        "token-required",
        "wrong-token",
        "right-token",
    ],
)
def test_access(settings, admin_configured, token, remote, header, status):
    settings.METRICS_TOKEN = token
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client(REMOTE_ADDR=remote).get("/metrics", **headers)
    assert response.status_code == status


@pytest.mark.django_db
def test_values_match_the_admin_console(admin_configured, stack, admin_console):
    before = {r["database"]: r for r in console_rows(admin_console, "SHOW STATS")}
    text = Client().get("/metrics").content.decode()
    after = {r["database"]: r for r in console_rows(admin_console, "SHOW STATS")}
    pools = {r["database"]: r for r in console_rows(admin_console, "SHOW POOLS")}
    metrics = samples(text)
    assert value(metrics, "pgbouncer_up") == 1
    queries = value(
        metrics, "pgbouncer_stats_totals_queries_pooled_total", database="app"
    )
    assert before["app"]["total_query_count"] <= queries
    assert queries <= after["app"]["total_query_count"]
    waiting = value(
        metrics,
        "pgbouncer_pools_client_waiting_connections",
        database="app",
        user="app",
    )
    assert waiting == pools["app"]["cl_waiting"]
    size = value(
        metrics,
        "pgbouncer_databases_pool_size",
        name="app",
        database="app",
        pool_mode="",
    )
    assert size == POOL_SIZE
    assert value(metrics, "pgbouncer_config_max_client_connections") == 500
    (version,) = [k for k in metrics if k[0] == "pgbouncer_version_info"]
    assert dict(version[1])["version"].startswith("PgBouncer 1.")
    assert value(metrics, "django_db_queries_total", alias="default") > 0


@pytest.mark.django_db
def test_nothing_secret_is_exported(admin_configured, stack):
    text = Client().get("/metrics").content.decode()
    for secret in (
        stack.secrets["app_password"],
        stack.secrets["admin_console_password"],
        "postgres://",
    ):
        assert secret not in text


@pytest.mark.django_db
def test_without_the_console_pgbouncer_is_down_not_an_error(settings):
    settings.PGBOUNCER_ADMIN_URL = "postgres://u:pw@127.0.0.1:9/pgbouncer"
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert value(samples(response.content.decode()), "pgbouncer_up") == 0


@pytest.mark.django_db
def test_guard_findings_are_counted(admin_configured):
    def findings():
        text = Client().get("/metrics").content.decode()
        return samples(text).get(
            (
                "django_pgbouncer_guard_findings_total",
                frozenset({"alias": "default", "kind": "listen"}.items()),
            ),
            0,
        )

    start = findings()
    with pytest.raises(SessionStateError), connection.cursor() as cursor:
        cursor.execute("LISTEN news")
    assert findings() == start + 1


@pytest.mark.django_db(transaction=True)
def test_counts_add_up_across_gunicorn_workers(web):
    def scrape():
        with urllib.request.urlopen(web + "/metrics", timeout=10) as response:
            metrics = samples(response.read().decode())
        # Absent until a worker has opened a connection.
        key = ("django_db_queries_total", frozenset({"alias": "default"}.items()))
        return metrics.get(key, 0)

    from core.services import demo_posts_seed

    demo_posts_seed(count=3)
    start = max(scrape() for _ in range(4))

    def view(_):
        urllib.request.urlopen(web + "/", timeout=10).close()

    with ThreadPoolExecutor(max_workers=32) as pool:  # spread over both workers
        list(pool.map(view, range(80)))
    # Whichever worker answers, it reports the queries of both: at least one per
    # view. Unsummed, each worker would report only its share.
    after = [scrape() for _ in range(8)]
    assert len(set(after)) == 1
    assert after[0] >= start + 80
