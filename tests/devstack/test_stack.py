"""devstack.stack's two console users: the site's reads PgBouncer's console and
cannot pause it; the operator's (maintenance_console_url) can, and never reaches
the site's environment. An old secrets.json keeps its passwords and gains the
new one."""

import json

import psycopg
import pytest

from devstack.stack import MAINTENANCE_VARIABLE, run_env, secrets_load
from tests.fixtures.stack import web_env

pytestmark = pytest.mark.servers


def console_error(url: str, command: str) -> str:
    """What PgBouncer's console answers `command` with ("" when it accepts it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(command, prepare=False)
        except psycopg.Error as error:
            return str(error)
    return ""


def test_the_sites_console_user_reads_and_cannot_pause(stack):
    url = stack.admin_console_url
    assert (url.user, url.name) == ("pgbouncer_stats", "pgbouncer")
    assert console_error(url.url(), "SHOW POOLS") == ""
    # RESUME when nothing is paused: refused for want of rights, before anything.
    assert "admin access needed" in console_error(url.url(), "RESUME app")


def test_the_maintenance_user_may_pause(stack):
    url = stack.maintenance_console_url
    assert (url.user, url.name) == ("pgbouncer_admin", "pgbouncer")
    assert url.password == stack.secrets["maintenance_console_password"]
    assert url.password != stack.admin_console_url.password
    # Accepted as an admin; refused only because nothing is paused.
    assert "not paused" in console_error(url.url(), "RESUME app")


def test_the_site_never_gets_the_maintenance_url(stack):
    password = stack.maintenance_console_url.password
    sourced = {MAINTENANCE_VARIABLE: stack.maintenance_console_url.url()}
    for env in (run_env(stack, sourced), web_env(stack), stack.site_env()):
        assert MAINTENANCE_VARIABLE not in env
        assert not [name for name, value in env.items() if password in value]
    assert run_env(stack, sourced)["PGBOUNCER_ADMIN_URL"] == (
        stack.admin_console_url.url()
    )


def test_an_old_secrets_file_keeps_its_passwords(tmp_path):
    path = tmp_path / "secrets.json"
    old = {
        "postgres_password": "pg-old",
        "app_password": "app-old",
        "admin_console_password": "console-old",
        "django_secret_key": "key-old",
    }
    path.write_text(json.dumps(old))
    loaded = secrets_load(path)
    assert {key: loaded[key] for key in old} == old
    assert len(loaded["maintenance_console_password"]) >= 24
    assert json.loads(path.read_text()) == loaded
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert secrets_load(path) == loaded  # made once, then kept
