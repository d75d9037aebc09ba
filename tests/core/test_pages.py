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


@pytest.mark.parametrize("page", ["0", "-1", "x", "3"])
def test_a_page_out_of_range_is_404(client, page):
    demo_posts_seed(count=25)
    assert client.get(f"/?page={page}").status_code == 404


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
