"""The install guide, tested: docs/install.md applied to a new `django-admin
startproject` project, pointed at the session's PostgreSQL and PgBouncer.

The guide's Python blocks are applied as their first lines say ("# mysite/urls.py:
the whole file"), and the `python manage.py` lines of its shell blocks are run as
written, so what is tested is the guide itself. The project gets a small tests.py
of its own (the admin with and without the dashboard's URLs, a row written and
read), which `manage.py test --parallel 2` runs through PgBouncer."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.stack import PROJECT_DIR, Stack
from tests.install.servers import (
    database_recreate,
    databases_drop,
    databases_named,
    manage,
    shown,
)

pytestmark = pytest.mark.servers

GUIDE = PROJECT_DIR / "docs" / "install.md"
DATABASE = "install_app"  # the project's own; Django's test database: test_install_app
TEST_DATABASES = f"test_{DATABASE}"

_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_HEADER = re.compile(r"# (?P<path>[\w./]+): (?P<action>.+)")

PROJECT_TESTS = '''\
"""The new project's own tests (written by tests/install/test_startproject.py)."""

from django.contrib.auth.models import Group, User
from django.test import TestCase, override_settings

MD5 = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins


@override_settings(PASSWORD_HASHERS=MD5)
class AdminTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        User.objects.create_superuser("admin", "admin@example.com", "long-password-1")

    def setUp(self):
        logged_in = self.client.login(username="admin", password="long-password-1")
        self.assertTrue(logged_in)

    def test_the_admin_index_links_the_dashboard(self):
        response = self.client.get("/admin/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'href="/admin/pgbouncer/"')

    @override_settings(ROOT_URLCONF="mysite.urls_admin_only")
    def test_the_admin_index_without_the_dashboard_urls(self):
        response = self.client.get("/admin/")
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, "pgbouncer-dashboard-link")

    def test_the_dashboard(self):
        self.assertEqual(self.client.get("/admin/pgbouncer/").status_code, 200)


class DatabaseTests(TestCase):
    def test_a_row_written_and_read(self):
        Group.objects.create(name="through PgBouncer")
        self.assertTrue(Group.objects.filter(name="through PgBouncer").exists())

    def test_ready(self):
        self.assertEqual(self.client.get("/readyz").status_code, 200)
'''
# The same project without the app, as plain Django meets PgBouncer.
WITHOUT_APP = """\
from .settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django_pgbouncer"]
"""
WITHOUT_DIRECT = """\
from .settings import *  # noqa: F403

del DATABASES["direct"]
"""


@dataclass(frozen=True)
class Snippet:
    """A Python block of the guide: which file, what to do, the code."""

    path: str
    action: str
    code: str


def guide_blocks(language: str) -> list[str]:
    text = GUIDE.read_text()
    return [code for lang, code in _FENCE.findall(text) if lang == language]


def guide_snippets() -> list[Snippet]:
    snippets = []
    for code in guide_blocks("python"):
        header = _HEADER.fullmatch(code.splitlines()[0])
        assert header, f"docs/install.md: a Python block without a header: {code!r}"
        snippets.append(Snippet(header["path"], header["action"], code))
    return snippets


def guide_commands() -> list[list[str]]:
    """The guide's `python manage.py ...` lines, as argument lists."""
    prefix = "python manage.py "
    return [
        line.removeprefix(prefix).split()
        for code in guide_blocks("sh")
        for line in code.splitlines()
        if line.startswith(prefix)
    ]


def assignment_replace(text: str, name: str, code: str) -> str:
    """`text` with its top-level `name = ...` statement replaced by `code`."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name
            for target in node.targets
        ):
            lines = text.splitlines(keepends=True)
            before, after = lines[: node.lineno - 1], lines[node.end_lineno or 0 :]
            return "".join(before) + code + "".join(after)
    raise AssertionError(f"startproject wrote no {name} = ... to replace")


def snippet_apply(root: Path, snippet: Snippet) -> None:
    target = root / snippet.path
    text = target.read_text()
    replace = re.fullmatch(r"replace (\w+)", snippet.action)
    if snippet.action == "the whole file":
        text = snippet.code
    elif snippet.action == "add at the end":
        text = text.rstrip("\n") + "\n\n" + snippet.code
    elif replace:
        text = assignment_replace(text, replace[1], snippet.code)
    else:
        raise AssertionError(f"docs/install.md: unknown action {snippet.action!r}")
    target.write_text(text)


def startproject(root: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(root)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    package = root / "mysite"
    # The admin alone, as startproject routes it, for the test without the dashboard.
    (package / "urls_admin_only.py").write_text((package / "urls.py").read_text())
    for snippet in guide_snippets():
        snippet_apply(root, snippet)
    (package / "tests.py").write_text(PROJECT_TESTS)
    (package / "settings_without_app.py").write_text(WITHOUT_APP)
    (package / "settings_without_direct.py").write_text(WITHOUT_DIRECT)


@pytest.fixture(scope="module")
def project(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The new project, its database made empty; its test databases gone after."""
    databases_drop(stack, TEST_DATABASES)
    database_recreate(stack, DATABASE)
    root = tmp_path_factory.mktemp("startproject")
    startproject(root)
    yield root
    databases_drop(stack, TEST_DATABASES)
    databases_drop(stack, DATABASE)


def project_env(stack: Stack, settings: str = "mysite.settings") -> dict[str, str]:
    """The guide's variables, for the session's servers and the project's database."""
    return {
        "DJANGO_SETTINGS_MODULE": settings,
        "DATABASE_URL": stack.pooled_url.with_(name=DATABASE).url(),
        "DIRECT_DATABASE_URL": stack.direct_url.with_(name=DATABASE).url(),
        "PGBOUNCER_ADMIN_URL": stack.admin_console_url.url(),
    }


def test_the_guide_has_every_step():
    places = {(s.path, s.action) for s in guide_snippets()}
    assert places == {
        ("mysite/settings.py", "replace INSTALLED_APPS"),
        ("mysite/settings.py", "replace DATABASES"),
        ("mysite/settings.py", "add at the end"),
        ("mysite/urls.py", "the whole file"),
    }
    assert guide_commands() == [
        ["check"],
        ["check", "--database", "default"],
        ["migrate"],
        ["test", "--parallel", "2"],
    ]


def test_the_guide_s_commands_pass_and_test_runs_twice(stack, project):
    env = project_env(stack)
    for args in [*guide_commands(), ["test", "--parallel", "2"]]:
        result = manage(stack, args, cwd=project, env=env)
        assert result.returncode == 0, shown(result)
        if args[0] == "migrate":
            assert "Migrating over the direct connection ('direct')." in result.stdout
        if args[0] == "test":
            assert "Cloning test database" in result.stderr, shown(result)
            assert "Ran 5 tests" in result.stderr, shown(result)
    assert databases_named(stack, TEST_DATABASES) == []


def test_harm_plain_django_fails_and_the_app_clears_what_it_left(stack, project):
    args = ["test", "--parallel", "2", "--noinput"]
    plain = manage(
        stack, args, cwd=project, env=project_env(stack, "mysite.settings_without_app")
    )
    assert plain.returncode != 0, shown(plain)
    blocked = f'source database "{TEST_DATABASES}" is being accessed by other users'
    assert blocked in plain.stderr, shown(plain)
    # What an interrupted run leaves: the test database, PgBouncer's session on it.
    assert databases_named(stack, TEST_DATABASES) == [TEST_DATABASES]

    result = manage(stack, args, cwd=project, env=project_env(stack))
    assert result.returncode == 0, shown(result)
    assert "Destroying old test database" in result.stderr
    assert databases_named(stack, TEST_DATABASES) == []


def test_without_a_direct_alias_tests_run_through_pgbouncer_alone(stack, project):
    env = project_env(stack, "mysite.settings_without_direct")
    result = manage(stack, ["test", "--parallel", "2"], cwd=project, env=env)
    assert result.returncode == 0, shown(result)
    assert "Ran 5 tests" in result.stderr
    # The checks' advice, as the test runner runs them.
    assert "django_pgbouncer.W006" in result.stderr
    assert databases_named(stack, TEST_DATABASES) == []
