"""The admin's changelists take the filters their pages make, and answer any
other lookup in the query string with a 400, never a 500."""

import pytest

pytestmark = [pytest.mark.servers, pytest.mark.django_db]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("core/post/?title__exact=%00", id="nul-in-a-text-lookup"),
        pytest.param("core/post/?content__contains=a%00", id="nul-in-contains"),
        pytest.param("auth/user/?username=%00", id="nul-in-a-user-lookup"),
        pytest.param("core/post/?title__regex=(", id="invalid-regex"),
        pytest.param("core/post/?id__range=1", id="range-of-one"),
        pytest.param("core/post/?created_at__year=99999999999999999999", id="year"),
        pytest.param(
            "core/post/?created_at__year=2020&created_at__month=99999999999999999999",
            id="month",
        ),
        pytest.param("core/post/?created_at__year__gt=99999999999999999999", id="gt"),
        pytest.param("auth/user/?date_joined__year=99999999999999999999", id="user"),
        pytest.param("auth/group/?name__regex=[", id="group-regex"),
        pytest.param("core/post/?q=%00", id="nul-in-search"),
    ],
)
def test_a_lookup_no_filter_makes_is_400(admin_client, query):
    assert admin_client.get(f"/admin/{query}").status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "core/post/",
        "core/post/?created_at__year=2026",
        "core/post/?created_at__year=2026&created_at__month=1&created_at__day=31",
        "core/post/?q=demo&o=-1",
        "auth/user/?is_staff__exact=1",
        "auth/user/?groups__id__exact=1",
        "auth/user/?is_active__exact=0&q=adm",
        "auth/group/?q=x",
    ],
)
def test_the_filters_the_admin_makes_still_work(admin_client, query):
    assert admin_client.get(f"/admin/{query}").status_code == 200
