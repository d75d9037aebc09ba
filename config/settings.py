"""The site's one settings module: every deployment difference is an environment
variable (`.env.example` lists them all). DJANGO_DEBUG is off unless set to 1; off,
the site refuses to start without a generated secret key and allowed hosts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django_pgbouncer import database_config, direct_database_config
from django_pgbouncer.databases import DEFAULT_CONN_HEALTH_CHECKS, DEFAULT_CONN_MAX_AGE
from django_pgbouncer.errors import ConfigError
from django_pgbouncer.routing import replica_database_configs

from .env import env_bool, env_int, env_list, env_str, web_processes, web_threads

BASE_DIR = Path(__file__).resolve().parent.parent

# Off unless asked for: a deployment that forgets the variable shows no debug page
# and, without a generated secret key, does not start. The tests set it to 1;
# `make run` hands the site 0, a generated key and its hosts.
DEBUG = env_bool("DJANGO_DEBUG", False)

# Marks of a key copied from an example instead of generated (compared without
# case or separators): a 50-character placeholder passes Django's own bar.
_PLACEHOLDER_MARKS = ("changeme", "replaceme", "placeholder", "example", "secretkey")


def _secret_key_problem(key: str) -> str | None:
    if not key:
        return "is unset"
    # Django's own bar for a key (security.W009), enforced instead of warned about.
    if len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-"):
        return "is shorter than 50 characters, or not random"
    letters = re.sub(r"[^a-z0-9]", "", key.lower())
    for mark in _PLACEHOLDER_MARKS:
        if mark in letters:
            return f"is a placeholder (it says {mark!r}), not a generated key"
    return None


SECRET_KEY = env_str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
if DEBUG:
    SECRET_KEY = SECRET_KEY or "django-insecure-development-only"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]"]
else:
    if problem := _secret_key_problem(SECRET_KEY):
        raise ConfigError(
            "DJANGO_SECRET_KEY",
            f"{problem}, and DJANGO_DEBUG is off (its default)",
            "set it to a long random value, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`; "
            "on a development machine, DJANGO_DEBUG=1 instead",
        )
    if not ALLOWED_HOSTS:
        raise ConfigError(
            "DJANGO_ALLOWED_HOSTS",
            "is empty, and DJANGO_DEBUG is off (its default)",
            "set it to the comma-separated host names the site answers to; "
            "on a development machine, DJANGO_DEBUG=1 instead",
        )

INSTALLED_APPS = [
    # Before django.contrib's apps: its `migrate` runs over the direct connection.
    "django_pgbouncer",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "core",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A form that cannot be read, or a NUL in a parameter: 400 before anything
    # reads them (config/middleware.py says why).
    "config.middleware.ParametersMiddleware",
    # Early, so a retry re-runs every middleware that reads the database
    # (django_pgbouncer/middleware.py says why): a lost backend costs a request
    # that had not written nothing; other database faults answer 503 with
    # Retry-After, never 500.
    "config.middleware.SiteBackendLossMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
# Served by gunicorn over WSGI (config/gunicorn.py). Under ASGI, set
# ASGI_APPLICATION instead, and CONN_MAX_AGE=0 (check django_pgbouncer.W004 says why).
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: every query through PgBouncer; migrations over the direct URL. ---
# The development default is the stack `make run` starts (.devstack/stack.env has
# its URLs with their generated passwords).
DATABASE_URL = env_str("DATABASE_URL", "postgres://app@127.0.0.1:56432/app")
DIRECT_DATABASE_URL = env_str("DIRECT_DATABASE_URL")
# How every alias through PgBouncer connects (the primary's and the replicas').
_POOLED: dict[str, Any] = {
    "pool_mode": env_str("POOL_MODE", "transaction"),
    "conn_max_age": env_int("CONN_MAX_AGE", DEFAULT_CONN_MAX_AGE),
    "conn_health_checks": env_bool("CONN_HEALTH_CHECKS", DEFAULT_CONN_HEALTH_CHECKS),
    # The runtime guard against session-state SQL: stop it while developing,
    # log it in production (where a false alarm must not break a page).
    "guard": env_str("PGBOUNCER_GUARD", "raise" if DEBUG else "log"),
    "pgbouncer_version": env_str("PGBOUNCER_VERSION") or None,
}
DATABASES = {"default": database_config(url=DATABASE_URL, **_POOLED)}
# The session path: PostgreSQL itself, for migrations (used by `migrate` on its own),
# LISTEN, session advisory locks and server-side cursors over big tables.
if DIRECT_DATABASE_URL:
    DATABASES["direct"] = direct_database_config(url=DIRECT_DATABASE_URL)
# Read replicas, each through PgBouncer (a database of its own there): reads go to
# one that has replayed the client's last write (django_pgbouncer/routing).
REPLICA_DATABASE_URLS = env_list("REPLICA_DATABASE_URLS")
if REPLICA_DATABASE_URLS:
    _REPLICAS = replica_database_configs(urls=REPLICA_DATABASE_URLS, **_POOLED)
    DATABASES.update(_REPLICAS)
    DATABASE_ROUTERS = ["django_pgbouncer.routing.ReplicaRouter"]
    PGBOUNCER_ROUTING = {
        "replicas": list(_REPLICAS),
        "max_lag_seconds": env_int("REPLICA_MAX_LAG_SECONDS", 5),
        "wait_seconds": env_int("REPLICA_WAIT_MS", 0) / 1000,
    }
    # Inside the retry (a replica lost under a read runs it again on the primary),
    # outside the middlewares that read and write sessions.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("config.middleware.SiteBackendLossMiddleware") + 1,
        "django_pgbouncer.routing.ReadYourWritesMiddleware",
    )
PGBOUNCER_ADMIN_URL = env_str("PGBOUNCER_ADMIN_URL")
# Each PgBouncer process's console, space-separated, when several share its port.
PGBOUNCER_ADMIN_URLS = env_str("PGBOUNCER_ADMIN_URLS")
# For the connection budget check (`manage.py check --database default`).
PGBOUNCER_WEB_CAPACITY = {"processes": web_processes(), "threads": web_threads()}
# /metrics: with a token, only `Authorization: Bearer <token>`; without, loopback only.
METRICS_TOKEN = env_str("METRICS_TOKEN")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- HTTPS: on by default in production; DJANGO_HTTPS=0 serves plain HTTP (make run
# on loopback, or a proxy that terminates TLS and talks HTTP to us).
HTTPS = env_bool("DJANGO_HTTPS", not DEBUG)
# Only behind a declared reverse proxy that sets X-Forwarded-Proto (and drops the
# client's own): without one, any client could claim HTTPS with that header. A
# declared proxy also means no caller counts as local for /metrics and /readyz.
BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_SSL_REDIRECT = HTTPS
# Probes and scrapes come over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# Django's debug page and the report mailed to ADMINS, without a credential: its own
# filter shows DATABASE_URL and the other URLs with their passwords.
DEFAULT_EXCEPTION_REPORTER_FILTER = "django_pgbouncer.reporting.SecretReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "django_pgbouncer.reporting.SecretExceptionReporter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
}
