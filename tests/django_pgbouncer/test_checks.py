"""System checks: each one triggered, and not triggered, by a DATABASES entry."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_pgbouncer import database_config, direct_database_config
from django_pgbouncer.checks import (
    CAPACITY_HINTS,
    DIRECT_CONNECTIONS,
    Capacity,
    _migrations_needing_session,
    capacity_problems,
    config_problems,
    keeps_connections,
    migration_problems,
)
from tests.django_pgbouncer.observe.conftest import processes  # noqa: F401

POOLED = "postgres://app:pw@pgbouncer:6432/app"
DIRECT = "postgres://app:pw@db:5432/app"


def pooled(**changes):
    """Our entry, with hand-made changes (OPTIONS replaced whole)."""
    entry = database_config(url=POOLED)
    entry["PGBOUNCER"] = {**entry["PGBOUNCER"], **changes.pop("PGBOUNCER", {})}
    return {**entry, **changes}


def ids(messages):
    return sorted(m.id for m in messages)


@pytest.mark.parametrize(
    ("entry", "asgi", "expected"),
    [
        (pooled(), False, []),
        (pooled(DISABLE_SERVER_SIDE_CURSORS=False), False, ["django_pgbouncer.E001"]),
        (
            database_config(url=POOLED, pool_mode="session")
            | {"DISABLE_SERVER_SIDE_CURSORS": False},
            False,
            [],
        ),
        (
            pooled(OPTIONS={"server_side_binding": True, "prepare_threshold": 5}),
            False,
            ["django_pgbouncer.E002"],
        ),
        (
            pooled(OPTIONS={"server_side_binding": True}),
            False,
            ["django_pgbouncer.E002"],
        ),
        (
            pooled(OPTIONS={"server_side_binding": True, "prepare_threshold": None}),
            False,
            [],
        ),
        (
            pooled(
                OPTIONS={"server_side_binding": True}, PGBOUNCER={"version": "1.21.0"}
            ),
            False,
            [],
        ),
        (
            pooled(
                OPTIONS={"server_side_binding": True}, PGBOUNCER={"version": "1.18.0"}
            ),
            False,
            ["django_pgbouncer.E002"],
        ),
        (pooled(OPTIONS={"prepare_threshold": 5}), False, []),
        (
            pooled(OPTIONS={"assume_role": "reporting"}),
            False,
            ["django_pgbouncer.E003"],
        ),
        (pooled(), True, ["django_pgbouncer.W004"]),
        (pooled(CONN_MAX_AGE=0), True, []),
        (
            pooled(OPTIONS={"pool": True}, CONN_MAX_AGE=0),
            False,
            ["django_pgbouncer.E005"],
        ),
        (
            database_config(url=POOLED, pool_mode="session")
            | {"OPTIONS": {"pool": {"min_size": 2}}},
            False,
            ["django_pgbouncer.E005"],
        ),
        (
            {
                "ENGINE": "django.db.backends.postgresql",
                "OPTIONS": {"pool": True},
                "DISABLE_SERVER_SIDE_CURSORS": False,
            },
            False,
            [],
        ),
    ],
    ids=[
        "ours-clean",
        "E001-cursors",
        "E001-not-in-session-mode",
        "E002-threshold",
        "E002-default-threshold",
        "E002-threshold-off",
        "E002-not-on-1.21",
        "E002-on-1.18",
        "E002-not-without-binding",
        "E003-assume-role",
        "W004-asgi",
        "W004-not-with-age-0",
        "E005-native-pool",
        "E005-session-mode-too",
        "not-a-pgbouncer-alias",
    ],
)
def test_config_problems(entry, asgi, expected):
    assert ids(config_problems({"default": entry}, asgi=asgi)) == expected


def test_messages_say_what_to_change():
    (message,) = config_problems(
        {"default": pooled(DISABLE_SERVER_SIDE_CURSORS=False)}, asgi=False
    )
    assert "does not exist" in message.msg
    assert "DISABLE_SERVER_SIDE_CURSORS" in str(message.hint)


@pytest.mark.parametrize(
    ("databases", "needs_session", "expected"),
    [
        ({"default": pooled()}, [], ["django_pgbouncer.W006"]),
        ({"default": pooled()}, ["shop.0007_index"], ["django_pgbouncer.E006"]),
        (
            {"default": pooled(), "direct": direct_database_config(url=DIRECT)},
            ["shop.0007_index"],
            [],
        ),
        (
            {"default": database_config(url=POOLED, pool_mode="session")},
            ["shop.0007_index"],
            [],
        ),
    ],
    ids=[
        "W006-no-direct-url",
        "E006-needs-a-session",
        "direct-url-set",
        "session-mode",
    ],
)
def test_migration_problems(databases, needs_session, expected):
    assert ids(migration_problems(databases, needs_session)) == expected


def test_the_projects_migrations_all_run_in_a_transaction():
    assert _migrations_needing_session() == []


def capacity(**changes):
    base = {
        "processes": 2,
        "threads": 4,
        "pooled_aliases": 1,
        "direct_aliases": 1,
        "max_client_conn": 100,
        "default_pool_size": 20,
        "reserve_pool_size": 0,
        "pools": 1,
        "max_db_connections": 0,
        "max_connections": 100,
        "superuser_reserved_connections": 3,
    }
    return Capacity(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        (
            {"processes": 13, "threads": 8, "direct_aliases": 0},
            ["django_pgbouncer.E007"],
        ),
        (
            {"processes": 12, "threads": 8, "max_client_conn": 96, "direct_aliases": 0},
            [],
        ),
        (
            {"pooled_aliases": 2, "processes": 7, "threads": 8, "direct_aliases": 0},
            ["django_pgbouncer.E007"],
        ),
        ({"default_pool_size": 98, "direct_aliases": 0}, ["django_pgbouncer.E008"]),
        ({"default_pool_size": 97, "direct_aliases": 0}, []),
        ({"default_pool_size": 95}, ["django_pgbouncer.E008"]),
        ({"default_pool_size": 94}, []),
        ({"default_pool_size": 80, "reserve_pool_size": 15}, ["django_pgbouncer.E008"]),
        (
            {
                "default_pool_size": 80,
                "reserve_pool_size": 15,
                "max_db_connections": 50,
            },
            [],
        ),
        ({"pools": 5}, ["django_pgbouncer.E008"]),
        ({"processes": 6, "threads": 32, "max_client_conn": 1000}, []),
        ({"processes": 8, "threads": 32, "max_client_conn": 1000}, []),
        (
            {"processes": 30, "threads": 4, "kept_direct_aliases": 1},
            ["django_pgbouncer.E007", "django_pgbouncer.E008"],
        ),
        (
            {
                "processes": 30,
                "threads": 4,
                "max_client_conn": 1000,
                "kept_direct_aliases": 1,
            },
            ["django_pgbouncer.E008"],
        ),
        ({"processes": 30, "threads": 4}, ["django_pgbouncer.E007"]),
        ({"processes": 30, "threads": 4, "pgbouncer_processes": 2}, []),
        ({"pgbouncer_processes": 4}, []),
        ({"pgbouncer_processes": 5}, ["django_pgbouncer.E008"]),
    ],
    ids=[
        "fits",
        "clients-over-max-client-conn",
        "clients-exactly-at-limit",
        "two-pooled-aliases",
        "pool-over-max-connections",
        "pool-exactly-fits",
        "direct-alias-counts-a-few",
        "direct-alias-few-fit",
        "reserve-counts",
        "max-db-connections-caps",
        "several-pools",
        "tier-6x32-is-no-e008",
        "tier-8x32-is-no-e008",
        "kept-direct-alias-both",
        "kept-direct-alias-threads-count",
        "big-tier-only-e007",
        "two-pgbouncers-take-twice-the-clients",
        "four-pgbouncers-pools-fit",
        "five-pgbouncers-pools-do-not",
    ],
)
def test_capacity_problems(changes, expected):
    assert sorted(i for i, _ in capacity_problems(capacity(**changes))) == expected


@pytest.mark.parametrize(
    ("changes", "backends"),
    [
        ({}, 20 + DIRECT_CONNECTIONS),
        ({"processes": 8, "threads": 32}, 20 + DIRECT_CONNECTIONS),
        ({"direct_aliases": 0, "reserve_pool_size": 5}, 25),
        ({"direct_aliases": 0, "max_db_connections": 12, "pools": 2}, 24),
        (
            {"pooled_aliases": 0, "direct_aliases": 0, "kept_direct_aliases": 1},
            2 * 4,
        ),
        (
            {
                "processes": 8,
                "threads": 32,
                "pooled_aliases": 0,
                "direct_aliases": 0,
                "kept_direct_aliases": 1,
            },
            8 * 32,
        ),
    ],
    ids=[
        "pool-and-direct-few",
        "pool-does-not-grow-with-the-tier",
        "reserve",
        "max-db-connections-per-pool",
        "direct-persistent-one-per-thread",
        "direct-persistent-grows",
    ],
)
def test_capacity_backends(changes, backends):
    assert capacity(**changes).backends == backends


@pytest.mark.parametrize(
    ("changes", "check_id", "named", "not_named"),
    [
        (
            {"processes": 30, "threads": 4},
            "django_pgbouncer.E007",
            ["MAX_CLIENT_CONN", "WEB_CONCURRENCY"],
            [],
        ),
        (
            {"default_pool_size": 95},
            "django_pgbouncer.E008",
            ["DEFAULT_POOL_SIZE", "MAX_DB_CONNECTIONS", "max_connections"],
            ["MAX_CLIENT_CONN", "WEB_CONCURRENCY", "GUNICORN_THREADS"],
        ),
    ],
    ids=["E007", "E008"],
)
def test_capacity_hints_name_only_fixes_that_help(changes, check_id, named, not_named):
    (found,) = capacity_problems(capacity(**changes))
    assert found[0] == check_id
    hint = CAPACITY_HINTS[check_id]
    assert [n for n in named if n not in hint] == []
    assert [n for n in not_named if n in hint] == []


def test_e008_names_a_kept_direct_alias_as_the_cause():
    ((_, message),) = capacity_problems(
        capacity(
            processes=30,
            threads=4,
            max_client_conn=1000,
            direct_aliases=0,
            kept_direct_aliases=1,
        )
    )
    assert "CONN_MAX_AGE" in message
    assert "120 more" in message


def direct_kept(settings, monkeypatch):
    """The direct alias made to keep its connections, as a hand-written entry might:
    then each thread may hold one (restored after the test)."""
    monkeypatch.setitem(settings.DATABASES["direct"], "CONN_MAX_AGE", 600)


@pytest.mark.servers
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("web", "kept", "expected"),
    [
        ({"processes": 2, "threads": 4}, False, None),
        # WEB_CONCURRENCY=6 GUNICORN_THREADS=32: PgBouncer serves it with its pool
        # of 3, and the direct alias (CONN_MAX_AGE=0) holds a connection only
        # while a migration or session work runs.
        ({"processes": 6, "threads": 32}, False, None),
        ({"processes": 100, "threads": 8}, False, "E007"),  # the test stack: 500
        ({"processes": 1, "threads": 97}, True, "E008"),  # 3 pooled + 97 kept > 97
    ],
    ids=["fits", "tier-6x32", "too-many-clients", "kept-direct-connections"],
)
def test_capacity_check_asks_the_servers(
    settings, monkeypatch, stack, web, kept, expected
):
    settings.PGBOUNCER_ADMIN_URL = stack.admin_console_url.url()
    settings.PGBOUNCER_WEB_CAPACITY = web
    if kept:
        direct_kept(settings, monkeypatch)
    if expected is None:
        call_command("check", databases=["default"], tags=["database"])
        return
    with pytest.raises(SystemCheckError, match=f"django_pgbouncer.{expected}"):
        call_command("check", databases=["default"], tags=["database"])


@pytest.mark.servers
@pytest.mark.django_db
@pytest.mark.parametrize("case", ["nothing-listens", "wrong-password"])
def test_capacity_check_warns_when_it_cannot_ask(settings, stack, capsys, case):
    """A console that cannot be reached is a warning with a hint, not a traceback,
    and the URL's password stays out of it."""
    from devstack.process import port_pick

    secret = "n0t-the-Password"
    url = stack.admin_console_url.with_(password=secret)
    if case == "nothing-listens":
        url = url.with_(port=port_pick())
    settings.PGBOUNCER_ADMIN_URL = url.url()
    call_command("check", databases=["default"], tags=["database"])
    output = capsys.readouterr()
    text = output.out + output.err
    assert "django_pgbouncer.W009" in text
    assert "PGBOUNCER_ADMIN_URL" in text
    assert secret not in text
    assert "Traceback" not in text


@pytest.mark.servers
@pytest.mark.django_db
def test_capacity_check_counts_only_the_aliases_pools(
    settings, monkeypatch, stack, superuser_conn, admin_console
):
    """PgBouncer's `*` entry keeps pools for other databases (psql to postgres, a
    test database) for an hour; they must not count against the site's budget."""
    import psycopg

    from tests.fixtures.stack import console_rows

    # A pool that is not the site's. (Not template1: a session PgBouncer kept there
    # would stop every CREATE DATABASE.)
    with psycopg.connect(stack.pooled_url.with_(name="postgres").url()) as conn:
        conn.execute("SELECT 1")
    config = {
        r["key"]: int(r["value"])
        for r in console_rows(admin_console, "SHOW CONFIG")
        if r["key"] in ("default_pool_size", "reserve_pool_size")
    }
    slots = superuser_conn.execute(
        "SELECT current_setting('max_connections')::int"
        " - current_setting('superuser_reserved_connections')::int"
    ).fetchone()[0]
    # One pool of the site's, plus one kept direct connection per thread: exactly
    # full.
    direct_kept(settings, monkeypatch)
    threads = slots - config["default_pool_size"] - config["reserve_pool_size"]
    settings.PGBOUNCER_ADMIN_URL = stack.admin_console_url.url()
    settings.PGBOUNCER_WEB_CAPACITY = {"processes": 1, "threads": threads}
    call_command("check", databases=["default"], tags=["database"])
    settings.PGBOUNCER_WEB_CAPACITY = {"processes": 1, "threads": threads + 1}
    with pytest.raises(SystemCheckError, match=r"django_pgbouncer\.E008"):
        call_command("check", databases=["default"], tags=["database"])


@pytest.mark.django_db
def test_capacity_check_warns_on_a_malformed_console_url(settings, capsys):
    settings.PGBOUNCER_ADMIN_URL = "postgres://stats:se/cret@127.0.0.1:6432/pgbouncer"
    call_command("check", databases=["default"], tags=["database"])
    text = "".join(capsys.readouterr())
    assert "django_pgbouncer.W009" in text
    assert "PGBOUNCER_ADMIN_URL" in text
    assert "se/cret" not in text


@pytest.mark.servers
@pytest.mark.django_db
def test_capacity_check_counts_each_pgbouncer_process_pools(
    settings,
    monkeypatch,
    superuser_conn,
    processes,  # noqa: F811 (the fixture of tests/django_pgbouncer/observe)
):
    """Two PgBouncer processes on one port (each pool 2) may open two pools'
    worth of servers: the check asks each console (PGBOUNCER_ADMIN_URLS)."""
    slots = superuser_conn.execute(
        "SELECT current_setting('max_connections')::int"
        " - current_setting('superuser_reserved_connections')::int"
    ).fetchone()[0]
    settings.PGBOUNCER_ADMIN_URLS = processes.consoles
    direct_kept(settings, monkeypatch)
    threads = slots - 2 * 2  # exactly full with both processes' pools
    settings.PGBOUNCER_WEB_CAPACITY = {"processes": 1, "threads": threads}
    call_command("check", databases=["default"], tags=["database"])
    settings.PGBOUNCER_WEB_CAPACITY = {"processes": 1, "threads": threads + 1}
    with pytest.raises(SystemCheckError, match=r"2 process\(es\) x 1 pools"):
        call_command("check", databases=["default"], tags=["database"])


@pytest.mark.parametrize(
    ("entry", "kept"),
    [
        (direct_database_config(url=DIRECT), False),
        ({"ENGINE": "django.db.backends.postgresql"}, False),
        ({"CONN_MAX_AGE": 600}, True),
        ({"CONN_MAX_AGE": None}, True),
        ({"CONN_MAX_AGE": 0, "OPTIONS": {"pool": True}}, True),
        ({"CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"max_size": 4}}}, True),
        ({"CONN_MAX_AGE": 0, "OPTIONS": {"pool": False}}, False),
    ],
    ids=[
        "ours",
        "django-default",
        "persistent",
        "for-ever",
        "native-pool",
        "native-pool-sized",
        "pool-off",
    ],
)
def test_which_direct_aliases_keep_connections(entry, kept):
    assert keeps_connections(entry) is kept
