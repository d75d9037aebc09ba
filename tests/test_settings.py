"""config/settings.py: production refuses to start half-configured, and when fully
configured `check --deploy` has nothing to say."""

import os
import subprocess
import sys

import pytest

from devstack.stack import PROJECT_DIR

KEY = "production-like-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": KEY,
    "DJANGO_ALLOWED_HOSTS": "example.com",
    "DATABASE_URL": "postgres://app:pw@pgbouncer:5432/app",
    "DIRECT_DATABASE_URL": "postgres://app:pw@db:5432/app",
}


def manage(*args, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DJANGO_") and not k.endswith("DATABASE_URL")
    }
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_DIR,
        env={**base, **env},
    )


def test_production_check_deploy_is_clean():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("missing", "variable"),
    [
        ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY"),
        ("DJANGO_ALLOWED_HOSTS", "DJANGO_ALLOWED_HOSTS"),
    ],
)
def test_production_refuses_to_start_without(missing, variable):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage("check", **env)
    assert result.returncode != 0
    assert f"{variable}: " in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "key",
    ["short-secret", "k" * 60, "django-insecure-" + "abcdefghij" * 5],
    ids=["short", "repetitive", "django-insecure"],
)
def test_weak_secret_key_is_refused_without_echoing_it(key):
    result = manage("check", **{**PRODUCTION, "DJANGO_SECRET_KEY": key})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY: " in result.stderr
    assert key not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DJANGO_DEBUG", "maybe"), ("CONN_MAX_AGE", "forever"), ("POOL_MODE", "fast")],
)
def test_malformed_site_variables_are_named(variable, value):
    result = manage("check", **{**PRODUCTION, variable: value})
    assert result.returncode != 0
    assert f"{variable}: " in result.stderr
    assert "Traceback" not in result.stderr


def test_plain_http_mode_for_loopback():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings as s;"
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE)",
        **{**PRODUCTION, "DJANGO_HTTPS": "0"},
    )
    assert result.stdout.split()[-2:] == ["False", "False"]


def test_without_a_direct_url_migrations_through_the_pooler_are_flagged():
    env = {k: v for k, v in PRODUCTION.items() if k != "DIRECT_DATABASE_URL"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode != 0
    assert "django_pgbouncer.W006" in result.stderr
