"""The admin's PgBouncer dashboard: staff only, true to the admin console, and clear
about the states where there is no pool to show."""

import json
import time
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from devstack.process import port_pick
from django_pgbouncer import views
from django_pgbouncer.observe.console import ConfigItem, Database, Pool, Stat
from django_pgbouncer.observe.pool_state import (
    WAIT_THRESHOLD_SECONDS,
    PoolState,
    pool_views,
)
from tests.fixtures.stack import POOL_SIZE, console_rows

pytestmark = [pytest.mark.servers, pytest.mark.django_db]

STATE_KEYS = {
    "configured",
    "reachable",
    "error",
    "version",
    "pools",
    "checked_at",
    "trouble",
    "processes",
}
POOL_KEYS = {
    "database",
    "user",
    "mode",
    "clients_active",
    "clients_waiting",
    "servers_active",
    "servers_idle",
    "servers_used",
    "pool_size",
    "maxwait_seconds",
    "queries_per_second",
    "transactions_per_second",
    "avg_query_ms",
    "avg_wait_ms",
    "total_query_count",
    "total_xact_count",
    "trouble",
}


class Page(HTMLParser):
    """What the dashboard shows, read the way its script finds it: the text of each
    data-field element and the classes of each data-cell, per pool row (data-pool;
    None outside the rows), and the attributes of each element with an id. The
    <template> for new rows is skipped."""

    VOID = {"area", "base", "br", "col", "hr", "img", "input", "link", "meta", "wbr"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str], list[str]]] = []
        self.fields: dict[tuple[str | None, str], str] = {}
        self.cells: dict[tuple[str | None, str], dict[str, str]] = {}
        self.rows: dict[str, set[str]] = {}
        self.by_id: dict[str, dict[str, str]] = {}
        self.texts: dict[str, str] = {}
        self.feed(html)
        self.close()

    def _pool(self) -> str | None:
        for _, attrs, _ in reversed(self.stack):
            if "data-pool" in attrs:
                return attrs["data-pool"]
        return None

    def _in_template(self) -> bool:
        return any(tag == "template" for tag, _, _ in self.stack)

    def handle_starttag(self, tag, attrs):
        found = {name: value or "" for name, value in attrs}
        if tag in self.VOID:
            return
        self.stack.append((tag, found, []))
        if self._in_template():
            return
        classes = set(found.get("class", "").split())
        if "data-pool" in found:
            self.rows[found["data-pool"]] = classes
        if "data-cell" in found:
            self.cells[(self._pool(), found["data-cell"])] = found
        if "id" in found:
            self.by_id[found["id"]] = found

    def handle_data(self, data):
        for _, _, text in self.stack:
            text.append(data)

    def handle_endtag(self, tag):
        while self.stack:
            name, attrs, text = self.stack.pop()
            if not self._in_template() and name != "template":
                shown = " ".join("".join(text).split())
                if "data-field" in attrs:
                    self.fields[(self._pool(), attrs["data-field"])] = shown
                if "id" in attrs:
                    self.texts[attrs["id"]] = shown
            if name == tag:
                break

    def field(self, pool: str | None, name: str) -> str:
        return self.fields[(pool, name)]

    def alert(self, pool: str | None, cell: str) -> bool:
        return "pgb-alert" in self.cells[(pool, cell)].get("class", "").split()

    def shown(self, pool: str | None, cell: str) -> bool:
        return "hidden" not in self.cells[(pool, cell)]


def login_redirect(response, path):
    return response.status_code == 302 and response["Location"] == (
        f"{reverse('admin:login')}?next={path}"
    )


def page_get(client):
    response = client.get(reverse("pgbouncer-dashboard"))
    assert response.status_code == 200
    return response.content.decode(), Page(response.content.decode())


def state_get(client):
    response = client.get(reverse("pgbouncer-dashboard-state"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.content.decode(), json.loads(response.content)


@pytest.fixture
def admin_configured(settings, stack):
    settings.PGBOUNCER_ADMIN_URL = stack.admin_console_url.url()


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(
        "operator", password="not-used-here", is_staff=True
    )
    client.force_login(user)
    return client


@pytest.mark.parametrize("name", ["pgbouncer-dashboard", "pgbouncer-dashboard-state"])
def test_anonymous_users_go_to_the_admin_login(client, admin_configured, name):
    path = reverse(name)
    assert login_redirect(client.get(path), path)


@pytest.mark.parametrize("name", ["pgbouncer-dashboard", "pgbouncer-dashboard-state"])
def test_users_who_are_not_staff_go_to_the_admin_login(
    client, django_user_model, admin_configured, name
):
    user = django_user_model.objects.create_user("visitor", password="x")
    client.force_login(user)
    path = reverse(name)
    assert login_redirect(client.get(path), path)


def test_staff_see_the_app_pool_and_the_version(
    staff_client, admin_configured, admin_console
):
    (version,) = console_rows(admin_console, "SHOW VERSION")
    pools = {r["database"]: r for r in console_rows(admin_console, "SHOW POOLS")}
    html, page = page_get(staff_client)
    assert page.texts["pgb-version"] == version["version"]
    assert page.texts["pgb-version"].startswith("PgBouncer 1.")
    assert "app/app" in page.rows
    assert page.field("app/app", "database") == "app"
    assert page.field("app/app", "mode") == pools["app"]["pool_mode"]
    assert page.field("app/app", "pool_size") == str(POOL_SIZE)
    assert int(page.field("app/app", "clients_active")) >= 1  # this test's own
    assert page.by_id["pgb-pools"].get("hidden") is None
    assert page.by_id["pgb-dashboard"]["data-state-url"] == reverse(
        "pgbouncer-dashboard-state"
    )
    # Breadcrumbs as the admin has them, the script and styles from static files.
    assert f'<a href="{reverse("admin:index")}">Home</a>' in html
    assert "django_pgbouncer/dashboard.js" in html
    assert "django_pgbouncer/dashboard.css" in html


def test_the_json_matches_the_admin_console(
    staff_client, admin_configured, admin_console
):
    def look():
        pools = {r["database"]: r for r in console_rows(admin_console, "SHOW POOLS")}
        stats = {r["database"]: r for r in console_rows(admin_console, "SHOW STATS")}
        return pools["app"], stats["app"]

    pool_before, stats_before = look()
    _, state = state_get(staff_client)
    pool_after, stats_after = look()
    databases = {r["name"]: r for r in console_rows(admin_console, "SHOW DATABASES")}

    assert set(state) == STATE_KEYS
    assert state["configured"] is True
    assert state["reachable"] is True
    assert state["error"] == ""
    assert abs(state["checked_at"] - time.time()) < 60
    (app,) = [p for p in state["pools"] if p["database"] == "app"]
    assert set(app) >= POOL_KEYS
    assert app["user"] == pool_before["user"]
    assert app["mode"] == pool_before["pool_mode"] == "transaction"
    assert app["pool_size"] == databases["app"]["pool_size"] == POOL_SIZE
    low = min(pool_before["cl_active"], pool_after["cl_active"])
    high = max(pool_before["cl_active"], pool_after["cl_active"])
    assert low - 1 <= app["clients_active"] <= high + 1
    assert (
        stats_before["total_query_count"]
        <= app["total_query_count"]
        <= stats_after["total_query_count"]
    )
    assert (
        stats_before["total_xact_count"]
        <= app["total_xact_count"]
        <= stats_after["total_xact_count"]
    )
    assert state["trouble"] is any(p["trouble"] for p in state["pools"])


def test_without_an_admin_url_the_page_says_not_configured(staff_client, settings):
    settings.PGBOUNCER_ADMIN_URL = ""
    _, page = page_get(staff_client)
    assert page.by_id["pgb-dashboard"]["data-status"] == "not-configured"
    assert page.texts["pgb-status"] == "Not configured"
    message = page.texts["pgb-messages"]
    assert message.startswith("PgBouncer is not configured.")
    assert "PGBOUNCER_ADMIN_URL" in message
    assert page.by_id["pgb-pools"].get("hidden") == ""
    assert not page.rows

    _, state = state_get(staff_client)
    assert state["configured"] is False
    assert state["reachable"] is False
    assert state["pools"] == []
    assert "PGBOUNCER_ADMIN_URL" in state["error"]


def test_a_closed_port_is_unreachable_and_the_password_stays_hidden(
    staff_client, settings
):
    password = "Unseen-Pa55word-42"
    port = port_pick()  # free: nothing listens there
    settings.PGBOUNCER_ADMIN_URL = (
        f"postgres://pgbouncer_admin:{password}@127.0.0.1:{port}/pgbouncer"
    )
    html, page = page_get(staff_client)
    assert page.by_id["pgb-dashboard"]["data-status"] == "unreachable"
    assert page.texts["pgb-status"] == "Unreachable"
    message = page.texts["pgb-messages"]
    assert message.startswith("PgBouncer is unreachable.")
    assert f"127.0.0.1:{port}" in message
    assert not page.rows

    body, state = state_get(staff_client)
    assert (state["configured"], state["reachable"]) == (True, False)
    assert f"127.0.0.1:{port}" in state["error"]
    assert password not in html
    assert password not in body


def test_the_admin_index_links_to_the_dashboard(staff_client):
    response = staff_client.get(reverse("admin:index"))
    assert response.status_code == 200
    page = Page(response.content.decode())
    link = page.by_id["pgbouncer-dashboard-link"]
    assert link["href"] == reverse("pgbouncer-dashboard")
    assert "module" in page.by_id["pgbouncer-module"]["class"].split()
    # Still the admin's own index around it: its app list and recent actions.
    assert "content-main" in page.by_id
    assert "recent-actions-module" in page.by_id


def fabricated_state(*, busy: Pool) -> PoolState:
    """Two pools through pool_state's own logic: `app` idle, `busy` as given."""
    quiet = Pool(
        database="app", user="app", cl_active=1, sv_idle=1, pool_mode="session"
    )
    pools = pool_views(
        [quiet, busy],
        [
            Stat(database="app", total_query_count=10, total_xact_count=5),
            Stat(
                database="busy",
                total_query_count=1234567,
                total_xact_count=7654,
                avg_query_count=42,
                avg_query_time=2500,  # microseconds
                avg_wait_time=1_500_000,
            ),
        ],
        [Database(name="app", pool_size=20), Database(name="busy", pool_size=3)],
        [ConfigItem(key="default_pool_size", value="20")],
    )
    return PoolState(
        configured=True, reachable=True, version="PgBouncer 9.9.9", pools=pools
    )


@pytest.fixture
def fabricate(monkeypatch):
    def install(state):
        monkeypatch.setattr(views, "pool_state", lambda admin_url, **kw: state)
        return state

    return install


def test_trouble_is_highlighted_and_explained(staff_client, fabricate):
    state = fabricate(
        fabricated_state(
            busy=Pool(
                database="busy",
                user="web",
                cl_active=9,
                cl_waiting=4,
                sv_active=3,
                maxwait=2,
                maxwait_us=500_000,
                pool_mode="transaction",
            )
        )
    )
    (_, busy) = state.pools
    assert len(busy.trouble) == 3  # waiting, the wait, the limit: pool_state says

    html, page = page_get(staff_client)
    assert page.by_id["pgb-dashboard"]["data-status"] == "trouble"
    assert page.texts["pgb-status"] == "Needs attention"
    assert "pgb-trouble" in page.rows["busy/web"]
    assert "pgb-trouble" not in page.rows["app/app"]
    for cell in ("clients_waiting", "maxwait", "servers"):
        assert page.alert("busy/web", cell), cell
        assert not page.alert("app/app", cell), cell
    for text in busy.trouble:
        assert text in page.field("busy/web", "trouble")
        assert text in page.texts["pgb-messages"]
    assert page.shown("busy/web", "trouble")
    assert page.field("app/app", "trouble") == ""
    assert not page.shown("app/app", "trouble")
    # The first render carries the numbers (no script needed).
    assert page.field("busy/web", "clients_waiting") == "4"
    assert page.field("busy/web", "servers_active") == "3"
    assert page.field("busy/web", "pool_size") == "3"
    assert page.field("busy/web", "maxwait_seconds") == "2.50"
    assert page.field("busy/web", "queries_per_second") == "42"
    assert page.field("busy/web", "total_query_count") == "1,234,567"
    assert page.field("busy/web", "avg_query_ms") == "2.50"
    assert page.field("busy/web", "avg_wait_ms") == "1500.00"
    assert page.field("busy/web", "mode") == "transaction"
    assert page.field("app/app", "mode") == "session"
    assert 'style="width: 100%"' in html  # the busy bar, full

    _, data = state_get(staff_client)
    assert data["trouble"] is True
    assert data["pools"][1]["trouble"] == list(busy.trouble)


def test_a_long_wait_alone_marks_only_the_wait(staff_client, fabricate):
    fabricate(
        fabricated_state(
            busy=Pool(
                database="busy",
                user="web",
                cl_active=2,
                sv_active=1,
                sv_idle=1,
                maxwait=int(WAIT_THRESHOLD_SECONDS) + 1,
                pool_mode="transaction",
            )
        )
    )
    _, page = page_get(staff_client)
    assert "pgb-trouble" in page.rows["busy/web"]
    assert page.alert("busy/web", "maxwait")
    assert not page.alert("busy/web", "clients_waiting")
    assert not page.alert("busy/web", "servers")
    assert page.field("busy/web", "trouble").startswith("longest wait")


def test_a_healthy_pool_is_not_highlighted(staff_client, fabricate):
    fabricate(
        fabricated_state(
            busy=Pool(database="busy", user="web", cl_active=2, sv_active=1)
        )
    )
    _, page = page_get(staff_client)
    assert page.by_id["pgb-dashboard"]["data-status"] == "ok"
    assert page.texts["pgb-status"] == "Healthy"
    assert page.texts["pgb-messages"] == ""
    for pool in ("app/app", "busy/web"):
        assert "pgb-trouble" not in page.rows[pool]
        for cell in ("clients_waiting", "maxwait", "servers"):
            assert not page.alert(pool, cell), (pool, cell)
        assert page.field(pool, "trouble") == ""
        assert not page.shown(pool, "trouble")


MALFORMED = "postgres://stats:se/cret@127.0.0.1:6432/pgbouncer"  # '/' not encoded


def test_a_malformed_console_url_is_a_state_not_a_failure():
    from django_pgbouncer.observe import pool_state

    state = pool_state(MALFORMED)
    assert (state.configured, state.reachable) == (True, False)
    assert state.error.startswith("PGBOUNCER_ADMIN_URL: ")
    assert "se/cret" not in state.error


@pytest.mark.servers
@pytest.mark.django_db
def test_probes_and_metrics_answer_with_a_malformed_console_url(settings, client):
    settings.PGBOUNCER_ADMIN_URL = MALFORMED
    for path in ("/readyz", "/metrics"):
        response = client.get(path, REMOTE_ADDR="127.0.0.1")
        assert response.status_code in (200, 503), path
        assert b"se/cret" not in response.content
