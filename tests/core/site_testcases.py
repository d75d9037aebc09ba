"""The site's own Django TestCases, run by `manage.py test --parallel 2` through
PgBouncer (tests/core/test_manage_test_parallel.py). pytest does not collect this
module: its name does not start with test_."""

from django.contrib.auth.models import User
from django.test import TestCase, override_settings
from django.urls import reverse

from core.models import Post

MD5 = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins


class PageTests(TestCase):
    def test_the_list_page_shows_the_newest_post_first(self) -> None:
        Post.objects.create(title="The older", content="x")
        Post.objects.create(title="The newer", content="x")
        response = self.client.get("/")
        assert response.status_code == 200
        body = response.content.decode()
        assert body.index("The newer") < body.index("The older")

    def test_a_post_written_is_read_back_on_its_page(self) -> None:
        post = Post.objects.create(title="Hello", content="First\n\nSecond")
        response = self.client.get(post.get_absolute_url())
        self.assertContains(response, "<p>Second</p>")


@override_settings(PASSWORD_HASHERS=MD5)
class AdminTests(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        User.objects.create_superuser("admin", "admin@example.com", "long-password-1")

    def setUp(self) -> None:
        logged_in = self.client.login(username="admin", password="long-password-1")
        assert logged_in

    def test_the_admin_index_links_the_dashboard(self) -> None:
        response = self.client.get(reverse("admin:index"))
        self.assertContains(response, f'href="{reverse("pgbouncer-dashboard")}"')

    def test_the_dashboard(self) -> None:
        response = self.client.get(reverse("pgbouncer-dashboard"))
        assert response.status_code == 200
