"""Traffic really goes through PgBouncer in transaction mode, and the pool bounds
PostgreSQL's connections however many clients come."""

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.models import Post
from core.services import demo_posts_seed
from tests.fixtures.stack import POOL_SIZE, console_rows

pytestmark = pytest.mark.servers


def app_totals(admin_console):
    stats = {row["database"]: row for row in console_rows(admin_console, "SHOW STATS")}
    return stats["app"]["total_xact_count"], stats["app"]["total_query_count"]


def get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def test_pool_runs_in_transaction_mode(admin_console):
    pools = {row["database"]: row for row in console_rows(admin_console, "SHOW POOLS")}
    assert pools["app"]["pool_mode"] == "transaction"


@pytest.mark.django_db(transaction=True)
def test_page_views_are_counted_by_pgbouncer(web, admin_console):
    demo_posts_seed(count=5)
    xacts, queries = app_totals(admin_console)
    for _ in range(10):
        status, body = get(web + "/")
        assert status == 200
        assert b"Demo post 5" in body
    time.sleep(0.1)
    xacts_after, queries_after = app_totals(admin_console)
    assert xacts_after - xacts >= 10
    assert queries_after - queries >= 10  # a query per view at least


@pytest.mark.django_db(transaction=True)
def test_200_concurrent_requests_stay_within_the_pool(
    web, admin_console, superuser_conn
):
    demo_posts_seed(count=30)
    peak = {"backends": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            (count,) = superuser_conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE usename = 'app' AND datname = 'app'"
            ).fetchone()
            peak["backends"] = max(peak["backends"], count)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=200) as pool:
            results = list(pool.map(get, [web + "/"] * 200))
    finally:
        done.set()
        sampler.join()
    assert [status for status, _ in results] == [200] * 200
    clients = [
        c for c in console_rows(admin_console, "SHOW CLIENTS") if c["database"] == "app"
    ]
    # More clients than server connections: the pool multiplexed them.
    assert len(clients) > POOL_SIZE
    assert 1 <= peak["backends"] <= POOL_SIZE
    servers = [
        s for s in console_rows(admin_console, "SHOW SERVERS") if s["database"] == "app"
    ]
    assert len(servers) <= POOL_SIZE


@pytest.mark.django_db(transaction=True)
def test_iterator_works_through_the_pooler():
    Post.objects.bulk_create(Post(title=f"p{i}", content="x") for i in range(2500))
    seen = sum(1 for _ in Post.objects.iterator(chunk_size=100))
    assert seen == 2500
