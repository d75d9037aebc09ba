"""A 500 shows no credential: not on Django's debug page (DEBUG on), not in the
report mailed to ADMINS (DEBUG off). Settings, the WSGI environment in
request.META, and the local variables of every frame are filtered."""

from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from django_pgbouncer.conf import alias_conninfo
from django_pgbouncer.reporting import secrets_collect

# Each secret is distinct, so a leak says which value leaked.
SECRETS = {
    "DATABASE_URL": "Pooled-pw-1x7",
    "DIRECT_DATABASE_URL": "Direct-pw-2y8",
    "PGBOUNCER_ADMIN_URL": "Console-pw-3z9",
    "CACHE_URL": "Cache-pw-4q0",  # any *_URL with a password
    "METRICS_TOKEN": "Metrics-token-5r1",
    "SECRET_KEY": "Secret-key-6s2-" + "k" * 40,
    "PASSWORD": "Databases-pw-7t3",  # DATABASES["default"]["PASSWORD"]
    "OPTIONS": "Options-pw-8u4",  # DATABASES["default"]["OPTIONS"]
    "PGBOUNCER_MAINTENANCE_URL": "Maintenance-pw-9v5",  # the environment only
    "SMTP_PASSWORD": "Smtp-pw-0w6",  # the environment only
    "DSN": "Conninfo-pw-1a7",  # a local variable: a libpq conninfo string
    "BACKUP_URL": "Backup pw/%@2b8",  # reserved characters, percent-encoded
}


def _url(name: str, host: str) -> str:
    return f"postgres://app:{quote(SECRETS[name], safe='')}@{host}:5432/app"


def failing_view(request: HttpRequest) -> HttpResponse:
    # What a view failing at the database has in its frame: the URL it read,
    # the connection arguments, a conninfo string.
    url = django_settings.DATABASE_URL
    conninfo = alias_conninfo(connections["default"].settings_dict)
    dsn = f"host=db port=5432 user=app password={SECRETS['DSN']} dbname=app"
    raise RuntimeError(f"the view failed with {len(url + dsn)} and {len(conninfo)}")


def failing_with_the_url_in_its_message(request: HttpRequest) -> HttpResponse:
    # A library's error that quotes what it was given, as some do.
    url = django_settings.DIRECT_DATABASE_URL
    try:
        raise ValueError(f"cannot parse {url}")
    except ValueError as error:
        raise RuntimeError(f"the view failed on {url}") from error


urlpatterns = [
    path("fail", failing_view),
    path("fail-message", failing_with_the_url_in_its_message),
]


@pytest.fixture
def credentials(settings, monkeypatch):
    settings.ROOT_URLCONF = __name__
    settings.DATABASE_URL = _url("DATABASE_URL", "pgbouncer")
    settings.DIRECT_DATABASE_URL = _url("DIRECT_DATABASE_URL", "db")
    settings.PGBOUNCER_ADMIN_URL = _url("PGBOUNCER_ADMIN_URL", "pgbouncer")
    settings.CACHE_URL = f"redis://:{SECRETS['CACHE_URL']}@cache:6379/0"
    settings.BACKUP_URL = _url("BACKUP_URL", "backup")
    settings.METRICS_TOKEN = SECRETS["METRICS_TOKEN"]
    settings.SECRET_KEY = SECRETS["SECRET_KEY"]
    # In place: the connection wrapper holds this very dict; nothing connects.
    entry = django_settings.DATABASES["default"]
    monkeypatch.setitem(entry, "PASSWORD", SECRETS["PASSWORD"])
    monkeypatch.setitem(
        entry, "OPTIONS", {**entry["OPTIONS"], "sslpassword": SECRETS["OPTIONS"]}
    )
    # The process environment, as runserver copies it into request.META.
    return {
        "DATABASE_URL": settings.DATABASE_URL,
        "PGBOUNCER_MAINTENANCE_URL": _url("PGBOUNCER_MAINTENANCE_URL", "pgbouncer"),
        "SMTP_PASSWORD": SECRETS["SMTP_PASSWORD"],
    }


def leaks(text: str) -> list[str]:
    """The names of the secrets in `text`, as written or percent-encoded."""
    return [
        name
        for name, secret in SECRETS.items()
        if secret in text or quote(secret, safe="") in text
    ]


def test_the_debug_page_shows_no_credential(settings, credentials):
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    response = client.get("/fail", **credentials)
    page = response.content.decode()
    assert response.status_code == 500
    assert "the view failed" in page  # the debug page itself
    # Still useful: which server a URL names, and that the variables exist.
    assert "pgbouncer:5432/app" in page
    assert "PGBOUNCER_MAINTENANCE_URL" in page
    assert "conninfo" in page
    assert leaks(page) == []


def test_the_mailed_report_shows_no_credential(settings, credentials):
    settings.DEBUG = False
    settings.ADMINS = [("Operators", "ops@example.com")]
    client = Client(raise_request_exception=False)
    response = client.get("/fail", **credentials)
    assert response.status_code == 500
    assert len(mail.outbox) == 1
    report = str(mail.outbox[0].body)
    assert "the view failed" in report
    assert "pgbouncer:5432/app" in report
    assert leaks(report) == []


@pytest.mark.parametrize("debug", [True, False], ids=["debug-page", "mailed-report"])
def test_an_exception_message_shows_no_credential(settings, credentials, debug):
    settings.DEBUG = debug
    settings.ADMINS = [("Operators", "ops@example.com")]
    response = Client(raise_request_exception=False).get("/fail-message")
    assert response.status_code == 500
    text = response.content.decode() if debug else str(mail.outbox[0].body)
    assert "the view failed on postgres://app:" in text
    assert "cannot parse postgres://app:" in text  # the cause, shown too
    assert leaks(text) == []


def test_the_filter_and_the_reporter_are_the_sites(settings):
    assert django_settings.DEFAULT_EXCEPTION_REPORTER_FILTER == (
        "django_pgbouncer.reporting.SecretReporterFilter"
    )
    assert django_settings.DEFAULT_EXCEPTION_REPORTER == (
        "django_pgbouncer.reporting.SecretExceptionReporter"
    )


@pytest.mark.parametrize(
    ("name", "value", "found"),
    [
        (
            "DATABASE_URL",
            "postgres://app:Pw%40long@db:5432/app",
            {"Pw%40long", "Pw@long"},
        ),
        ("ANY", "see redis://:Cache-pw-long@cache:6379/0", {"Cache-pw-long"}),
        ("ANY", "postgres://app@db:5432/app", set()),
        ("SMTP_PASSWORD", "Smtp-pw-long", {"Smtp-pw-long"}),
        ("SMTP_PASSWORD", "pw", set()),  # too short to mask wherever it appears
        ("DATABASES", {"default": {"PASSWORD": "Db-pw-long"}}, {"Db-pw-long"}),
        ("OPTIONS", {"sslmode": "require"}, set()),
        ("HOSTS", ["ok", "https://u:List-pw-long@h/"], {"List-pw-long"}),
    ],
    ids=[
        "url-encoded",
        "url-in-text",
        "url-without-password",
        "secret-name",
        "short",
        "nested-password",
        "options-not-secret",
        "in-a-list",
    ],
)
def test_secrets_are_found_by_name_and_in_urls(name, value, found):
    assert secrets_collect([(name, value)]) == found
