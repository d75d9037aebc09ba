"""config/settings.py: production refuses to start half-configured, and when fully
configured `check --deploy` has nothing to say."""

import http.client
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

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


def environ_without_the_sites():
    """This process's environment without the site's variables (the test settings
    set some)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DJANGO_") and not k.endswith("DATABASE_URL")
    }


def manage(*args, **env):
    base = environ_without_the_sites()
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


@pytest.mark.parametrize("proxy", ["0", "1"], ids=["direct", "behind-a-proxy"])
def test_check_deploy_is_clean_with_https_on(proxy):
    env = {**PRODUCTION, "DJANGO_HTTPS": "1", "DJANGO_BEHIND_PROXY": proxy}
    result = manage("check", "--deploy", "--fail-level", "DEBUG", **env)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


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


def env_example_value(name):
    """The value `.env.example` gives `name`: what a deployment that copied it
    without editing would run with."""
    for line in (PROJECT_DIR / ".env.example").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise AssertionError(f".env.example does not set {name}")


def test_the_env_example_secret_key_is_refused():
    """Whatever `.env.example` says: a deployment that copied it unedited must not
    start."""
    key = env_example_value("DJANGO_SECRET_KEY")
    result = manage("check", **{**PRODUCTION, "DJANGO_SECRET_KEY": key})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY: " in result.stderr
    assert not key or key not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "key",
    [
        "CHANGE-ME-to-a-long-random-value-this-placeholder-is-public",
        "CHANGE-ME-to-a-long-random-value-0123456789-abcdefghijklmnop",
        "replace_me_with_the_output_of_token_urlsafe_0123456789abcdef",
        "your-secret-key-goes-here-0123456789-abcdefghijklmnopqrstuvw",
        "an-example-key-for-the-docs-0123456789-abcdefghijklmnopqrstu",
    ],
    ids=[
        "change-me-as-written",
        "change-me",
        "replace-me",
        "your-secret-key",
        "example",
    ],
)
def test_a_placeholder_secret_key_is_refused(key):
    assert len(key) >= 50  # long and varied: Django's own bar would pass it
    result = manage("check", **{**PRODUCTION, "DJANGO_SECRET_KEY": key})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY: " in result.stderr
    assert "placeholder" in result.stderr
    assert key not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_deployment_that_forgets_django_debug_runs_without_debug():
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_DEBUG"}
    result = manage(
        "shell", "-c", "from django.conf import settings; print(settings.DEBUG)", **env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"


def test_without_django_debug_and_a_key_the_site_refuses_to_start():
    env = {
        k: v
        for k, v in PRODUCTION.items()
        if k not in ("DJANGO_DEBUG", "DJANGO_SECRET_KEY")
    }
    result = manage("check", **env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY: is unset" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr  # the fix
    assert "Traceback" not in result.stderr


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


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(tmp_path, **env):
    """The site under gunicorn with config/gunicorn.py (no database needed for
    what these tests ask); yields its port."""
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py"],
        cwd=PROJECT_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **environ_without_the_sites(),
            **PRODUCTION,
            "WEB_PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            **env,
        },
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def status_claiming_https(port):
    """A request from loopback that says, by header, it came over HTTPS."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(
            "GET",
            "/no-such-page",
            headers={"Host": "example.com", "X-Forwarded-Proto": "https"},
        )
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("declared", "status"),
    [({}, 301), ({"DJANGO_BEHIND_PROXY": "1"}, 404)],
    ids=["no-proxy-declared", "proxy-declared"],
)
def test_https_by_header_is_believed_only_behind_a_declared_proxy(
    tmp_path, declared, status
):
    """Without a proxy, X-Forwarded-Proto is any client's claim: the request is
    still plain HTTP, and the site redirects it to HTTPS. Behind a declared proxy
    the header is the proxy's word: the request is served (here, a 404)."""
    with gunicorn(tmp_path, DJANGO_HTTPS="1", **declared) as port:
        assert status_claiming_https(port) == status
