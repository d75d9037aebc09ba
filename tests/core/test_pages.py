"""The site's pages, served through PgBouncer."""

import pytest
from django.db import connection
from django.urls import reverse

from core.models import Post
from core.services import demo_posts_seed

pytestmark = [pytest.mark.servers, pytest.mark.django_db]


def test_the_site_talks_to_pgbouncer(stack):
    assert connection.settings_dict["PORT"] == stack.settings.pgbouncer_port


def test_list_page_shows_newest_first_and_paginates(client):
    demo_posts_seed(count=25)
    Post.objects.create(title="The newest", content="x")
    first = client.get("/")
    assert first.status_code == 200
    body = first.content.decode()
    assert body.index("The newest") < body.index("Demo post 25")
    assert "Page 1" in body
    assert 'href="?page=2" rel="next"' in body
    second = client.get("/?page=2").content.decode()
    assert "Demo post 1<" in second
    assert 'rel="next"' not in second  # 26 posts: the second page is the last
    assert 'href="?page=1" rel="prev"' in second


# ?page= is read as Django's ListView reads it: int() of the value, `last` for the
# last page, empty for the first; anything else, or a page past the end, is a 404.
@pytest.mark.parametrize(
    "page",
    [
        pytest.param("0", id="zero"),
        pytest.param("-1", id="negative"),
        pytest.param("x", id="word"),
        pytest.param("3", id="past-the-end"),
        pytest.param("%C2%B2", id="superscript-two"),
        pytest.param("1.5", id="fraction"),
        pytest.param("99999999999999999999", id="offset-beyond-bigint"),
        pytest.param("9" * 5000, id="more-digits-than-int-reads"),
        pytest.param("LAST", id="last-in-capitals"),
    ],
)
def test_a_page_out_of_range_is_404(client, page):
    demo_posts_seed(count=25)
    assert client.get(f"/?page={page}").status_code == 404


@pytest.mark.parametrize(
    ("page", "shown"),
    [
        pytest.param("", 1, id="empty"),
        pytest.param("last", 2, id="last"),
        pytest.param("%D9%A2", 2, id="arabic-indic-two"),
        pytest.param("%EF%BC%92", 2, id="fullwidth-two"),
        pytest.param("+2", 2, id="plus-sign"),
    ],
)
def test_a_page_read_as_listview_reads_it(client, page, shown):
    demo_posts_seed(count=25)
    response = client.get(f"/?page={page}")
    assert response.status_code == 200
    assert f"Page {shown}<" in response.content.decode()


def test_the_last_page_of_an_empty_list_is_the_first(client):
    response = client.get("/?page=last")
    assert response.status_code == 200
    assert "No posts yet" in response.content.decode()


@pytest.mark.parametrize("pk", ["99999999999999999999", "0"])
def test_a_post_number_out_of_range_is_404(client, pk):
    assert client.get(f"/posts/{pk}/").status_code == 404


def test_list_page_reads_only_the_columns_it_shows(client, django_assert_num_queries):
    demo_posts_seed(count=3)
    with django_assert_num_queries(1) as queries:  # the page; no COUNT(*)
        client.get("/")
    page_sql = queries.captured_queries[-1]["sql"]
    assert '"content"' not in page_sql
    assert '"title"' in page_sql


def test_detail_page(client):
    post = Post.objects.create(title="Hello", content="First line\n\nSecond")
    response = client.get(reverse("post_detail", kwargs={"pk": post.pk}))
    assert response.status_code == 200
    assert "<p>Second</p>" in response.content.decode()


def test_missing_post_is_404(client):
    assert client.get("/posts/999999/").status_code == 404


def test_empty_list_points_at_the_admin(client):
    assert "/admin/core/post/add/" in client.get("/").content.decode()


def test_seed_is_idempotent():
    assert demo_posts_seed(count=5) == 5
    assert demo_posts_seed(count=5) == 0
    assert demo_posts_seed(count=7) == 2
    assert Post.objects.count() == 7
    assert demo_posts_seed(count=50, if_empty=True) == 0


def test_admin_login_and_new_post_appears_on_the_list(client, django_user_model):
    django_user_model.objects.create_superuser("boss", "", "a-long-password-1")
    login = client.post(
        "/admin/login/?next=/admin/",
        {"username": "boss", "password": "a-long-password-1"},
    )
    assert login.status_code == 302
    added = client.post(
        "/admin/core/post/add/", {"title": "Written in the admin", "content": "Hi"}
    )
    assert added.status_code == 302
    assert "Written in the admin" in client.get("/").content.decode()
    changelist = client.get("/admin/core/post/?q=admin")
    assert "Written in the admin" in changelist.content.decode()


@pytest.mark.parametrize("past", [0, 1], ids=["last-offset-postgres-reads", "beyond"])
def test_pages_at_the_bigint_edge_are_404(client, past):
    from core.selectors import BIGINT_MAX, PAGE_SIZE

    # The largest page whose OFFSET and LIMIT still fit a bigint runs its query.
    edge = (BIGINT_MAX - PAGE_SIZE - 1) // PAGE_SIZE + 1
    assert client.get(f"/?page={edge + past}").status_code == 404


@pytest.mark.parametrize("query", ["page=%00", "x=1%002", "%00=1", "page=1&q=%00"])
def test_a_nul_in_the_query_string_is_400(client, query):
    assert client.get(f"/?{query}").status_code == 400
