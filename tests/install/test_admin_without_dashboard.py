"""Installing the app never breaks the admin: its index shows the dashboard link only
where the project routes the dashboard."""

import pytest
from django.test import override_settings
from django.urls import reverse

pytestmark = [pytest.mark.servers, pytest.mark.django_db]


@override_settings(ROOT_URLCONF="tests.install.urls_admin_only")
def test_the_admin_index_answers_without_the_dashboard_urls(admin_client):
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "pgbouncer-module" not in body
    assert "app-auth" in body  # the admin's own app list is still there


def test_the_admin_index_links_the_dashboard_where_it_is_routed(admin_client):
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    assert f'href="{reverse("pgbouncer-dashboard")}"' in response.content.decode()
