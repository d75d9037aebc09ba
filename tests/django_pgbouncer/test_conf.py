"""conf.py: the settings contract, and the only module that reads settings."""

import ast
import importlib
from enum import StrEnum
from pathlib import Path

import pytest
from django.db import connection, transaction

import django_pgbouncer
from django_pgbouncer import ConfigError, GuardMode, PoolMode, SessionStateError
from django_pgbouncer.conf import (
    AliasOptions,
    alias_options,
    alias_options_set,
    app_settings,
    direct_alias,
    pooled_aliases,
)
from django_pgbouncer.observe import ReadyStatus

PACKAGE = Path(django_pgbouncer.__file__).parent


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, AliasOptions()),
        ({"pool_mode": "transaction"}, AliasOptions(pool_mode=PoolMode.TRANSACTION)),
        ({"pool_mode": "Statement "}, AliasOptions(pool_mode=PoolMode.STATEMENT)),
        (
            {"pool_mode": "session", "guard": "log", "version": "1.18"},
            AliasOptions(PoolMode.SESSION, GuardMode.LOG, "1.18"),
        ),
        ({"direct_for": "default"}, AliasOptions(direct_for="default")),
    ],
    ids=["not-pooled", "transaction", "case-and-space", "session-log", "direct"],
)
def test_alias_options(raw, expected):
    entry = {} if raw is None else {"PGBOUNCER": raw}
    assert alias_options(entry) == expected


@pytest.mark.parametrize(
    ("raw", "key"),
    [({"pool_mode": "transactional"}, "pool_mode"), ({"guard": "warn"}, "guard")],
)
def test_alias_options_name_the_bad_key(raw, key):
    with pytest.raises(ConfigError) as caught:
        alias_options({"PGBOUNCER": raw}, alias="replica")
    assert str(caught.value).startswith(f"DATABASES['replica']['PGBOUNCER']['{key}']: ")


@pytest.mark.parametrize(
    "options",
    [
        AliasOptions(),
        AliasOptions(PoolMode.TRANSACTION, GuardMode.OFF, "1.21"),
        AliasOptions(direct_for="default"),
    ],
    ids=["none", "pooled", "direct"],
)
def test_alias_options_round_trip(options):
    entry: dict[str, object] = {}
    alias_options_set(entry, options)
    assert alias_options(entry) == options


def test_pooled_and_direct_aliases():
    databases = {
        "default": {"PGBOUNCER": {"pool_mode": "transaction"}},
        "session": {"PGBOUNCER": {"pool_mode": "session"}},
        "direct": {"PGBOUNCER": {"direct_for": "default"}},
        "other": {},
    }
    assert list(pooled_aliases(databases)) == ["default"]
    assert direct_alias(databases, "default") == "direct"
    assert direct_alias(databases, "session") is None


def test_app_settings_follow_setting_changes(settings):
    settings.PGBOUNCER_ADMIN_URL = "postgres://stats:pw@127.0.0.1:6432/pgbouncer"
    settings.PGBOUNCER_WEB_CAPACITY = {"processes": 3, "threads": 8}
    settings.METRICS_TOKEN = "token"
    conf = app_settings()
    assert conf.admin_url == settings.PGBOUNCER_ADMIN_URL
    assert (conf.web_capacity.processes, conf.web_capacity.threads) == (3, 8)
    assert conf.metrics_token == "token"
    settings.PGBOUNCER_ADMIN_URL = ""
    assert app_settings().admin_url is None


def test_asgi_is_told_from_the_application_settings(settings):
    settings.ASGI_APPLICATION = "config.asgi.application"
    assert app_settings().asgi is False  # WSGI_APPLICATION is set too
    settings.WSGI_APPLICATION = None
    assert app_settings().asgi is True


def test_the_docstring_documents_every_setting_and_key():
    import django_pgbouncer.conf as conf

    doc = conf.__doc__ or ""
    for setting in conf._SETTINGS:
        assert f"``{setting}``" in doc, setting
    for key in AliasOptions.__dataclass_fields__:
        assert f"``{key}``" in doc, key


def _reads_settings(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "settings"
        ):
            found.append(f"settings.{node.attr}")
        if isinstance(node, ast.Constant) and node.value == "PGBOUNCER":
            found.append('"PGBOUNCER"')
        if isinstance(node, ast.ImportFrom) and node.module == "django.conf":
            found.append("from django.conf import")
    return found


def test_no_module_but_conf_reads_settings():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "conf.py" and path.parent == PACKAGE:
            continue
        found = _reads_settings(ast.parse(path.read_text()))
        if found:
            offenders[str(path.relative_to(PACKAGE))] = found
    assert offenders == {}


def test_the_scan_finds_a_reader():
    """The scan above can fail: it sees each way of reading settings."""
    source = (
        "from django.conf import settings\n"
        "x = settings.DATABASES\n"
        "y = entry['PGBOUNCER']\n"
    )
    assert len(_reads_settings(ast.parse(source))) == 3


@pytest.mark.parametrize("kind", [PoolMode, GuardMode, ReadyStatus])
def test_modes_and_statuses_are_str_enums(kind):
    assert issubclass(kind, StrEnum)


@pytest.mark.servers
@pytest.mark.django_db
def test_the_guard_message_names_an_import_that_works(stack):
    with (
        pytest.raises(SessionStateError) as caught,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET work_mem = '8MB'")
    message = str(caught.value)
    assert "django_pgbouncer.session_state_allowed()" in message
    module, name = ["django_pgbouncer", "session_state_allowed"]
    allowed = getattr(importlib.import_module(module), name)
    with transaction.atomic(), allowed(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '8MB'")
        cursor.execute("SET work_mem = '8MB'")
        cursor.execute("RESET work_mem")


@pytest.mark.parametrize(
    "value",
    [
        {"processes": "four"},
        {"processes": 0},
        {"threads": 2.5},
        {"workers": 2},
        [2, 4],
        "2x4",
        {"processes": True},
    ],
    ids=["text", "zero", "fraction", "unknown-key", "list", "string", "bool"],
)
def test_a_malformed_web_capacity_is_named(settings, value):
    settings.PGBOUNCER_WEB_CAPACITY = value
    with pytest.raises(ConfigError) as caught:
        app_settings()
    assert str(caught.value).startswith("PGBOUNCER_WEB_CAPACITY: ")
    assert '{"processes": N, "threads": N}' in str(caught.value)


def test_a_partial_web_capacity_counts_one_for_the_rest(settings):
    settings.PGBOUNCER_WEB_CAPACITY = {"threads": 8}
    capacity = app_settings().web_capacity
    assert (capacity.processes, capacity.threads) == (1, 8)
