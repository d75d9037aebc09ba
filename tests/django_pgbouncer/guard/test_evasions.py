"""Statements written to slip past a guard that reads SQL by hand, through a real
PgBouncer in transaction mode: first each one's harm (another client inherits
what it left), then the guard stopping it, then the statements such a guard
stopped wrongly running without complaint, and what they did."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from django.db import connection, connections, transaction

from django_pgbouncer.errors import SessionStateError
from django_pgbouncer.guard import HAZARDS

pytestmark = [
    pytest.mark.servers,
    pytest.mark.django_db(databases=["default", "direct"], transaction=True),
]

TIDY = "SELECT pg_advisory_unlock_all(); RESET ALL; DISCARD TEMP; DISCARD SEQUENCES"


@dataclass(frozen=True)
class Evasion:
    id: str
    sql: str  # what the guard must stop
    kind: str
    probe: str  # another client, on the same server connection, sees the harm
    seen: Any  # what the probe returns; a callable of a direct connection for random()
    setup: str = ""  # what the first client runs instead of `sql`, if not `sql`


def _after_setseed(direct: psycopg.Connection[Any]) -> Any:
    direct.execute("SELECT setseed(0.43)")
    return direct.execute("SELECT random()").fetchone()


EVASIONS = [
    Evasion(
        "unicode-escaped function",
        'SELECT U&"pg_advisory\\005Flock"(4301)',
        "advisory_lock",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4301"
        " AND pid = pg_backend_pid()",
        (1,),
    ),
    Evasion(
        "unicode-escaped set_config",
        "SELECT U&\"\\0073et_config\"('work_mem', '4302kB', false)",
        "setting",
        "SHOW work_mem",
        ("4302kB",),
    ),
    Evasion(
        "comment ended by a carriage return",
        "SELECT 1; -- harmless\rSET work_mem = '4303kB'",
        "setting",
        "SHOW work_mem",
        ("4303kB",),
    ),
    Evasion(
        "escape-string DO body",
        "DO E'BEGIN \\x53ET work_mem = ''4304kB''; END'",
        "setting",
        "SHOW work_mem",
        ("4304kB",),
    ),
    Evasion(
        "unicode-string DO body",
        "DO U&'BEGIN \\0053ET work_mem = ''4305kB''; END'",
        "setting",
        "SHOW work_mem",
        ("4305kB",),
    ),
    Evasion(
        "EXECUTE of a constant in DO",
        "DO $$BEGIN EXECUTE 'SET work_mem = ''4306kB'''; END$$",
        "setting",
        "SHOW work_mem",
        ("4306kB",),
    ),
    Evasion(
        "function in pg_temp",
        "CREATE FUNCTION pg_temp.evasion() RETURNS int LANGUAGE sql AS 'SELECT 4307'",
        "temp_object",
        "SELECT pg_temp.evasion()",
        (4307,),
    ),
    Evasion(
        "currval",
        "SELECT currval('evasion_seq')",
        "sequence_state",
        "SELECT currval('evasion_seq')",
        (4308,),
        setup="SELECT setval('evasion_seq', 4307); SELECT nextval('evasion_seq')",
    ),
    Evasion(
        "lastval",
        "SELECT lastval()",
        "sequence_state",
        "SELECT lastval()",
        (4308,),
        setup="SELECT setval('evasion_seq', 4307); SELECT nextval('evasion_seq')",
    ),
    Evasion(
        "setseed",
        "SELECT setseed(0.43)",
        "random_seed",
        "SELECT random()",
        _after_setseed,
    ),
    Evasion(
        "setting prefixed transaction",
        "SET transaction.tenant = '4310'",
        "setting",
        "SELECT current_setting('transaction.tenant', true)",
        ("4310",),
    ),
    Evasion(
        "setting prefixed local",
        "SET local.tenant = '4311'",
        "setting",
        "SELECT current_setting('local.tenant', true)",
        ("4311",),
    ),
]


@pytest.fixture(scope="module")
def evasion_seq(stack):
    with psycopg.connect(stack.direct_url.url(), autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE IF NOT EXISTS evasion_seq")
        yield
        conn.execute("DROP SEQUENCE evasion_seq")


@pytest.mark.parametrize("case", EVASIONS, ids=[e.id for e in EVASIONS])
def test_harm_another_client_inherits_it(
    case, hazard_bouncer, superuser_conn, evasion_seq
):
    seen: Callable[..., Any] | Any = case.seen
    expected = seen(superuser_conn) if callable(seen) else seen
    with (
        psycopg.connect(hazard_bouncer, autocommit=True) as a,
        psycopg.connect(hazard_bouncer, autocommit=True) as b,
    ):
        a.execute(case.setup or case.sql)
        with b.transaction():  # b takes the server connection a just left
            assert b.execute(case.probe).fetchone() == expected
            b.execute(TIDY)


@pytest.mark.parametrize("case", EVASIONS, ids=[e.id for e in EVASIONS])
def test_guard_stops_it(case, evasion_seq):
    with pytest.raises(SessionStateError) as caught, connection.cursor() as cursor:
        cursor.execute(case.sql)
    assert HAZARDS[case.kind].instead in str(caught.value)


def run(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def test_safe_twin_reset_of_a_tracked_parameter():
    run("SET TIME ZONE 'Asia/Tokyo'")
    run("RESET TIME ZONE")  # PgBouncer tracks TimeZone: it follows the client
    run("RESET standard_conforming_strings")
    assert run("SHOW standard_conforming_strings") == [("on",)]
    run("SET TIME ZONE 'UTC'")  # Django's, as the connection had it


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT set_config('work_mem', %s, %s)", ["4320kB", True]),
        (
            "SELECT set_config('work_mem', %(v)s, %(local)s)",
            {"v": "4320kB", "local": True},
        ),
        ("SELECT set_config('work_mem', '4320kB', true::boolean)", None),
        ("SELECT set_config('work_mem', '4320kB', 'true'::bool)", None),
    ],
    ids=["bound %s", "bound %(name)s", "true::boolean", "'true'::bool"],
)
def test_safe_twin_set_config_is_local_bound_or_cast(sql, params):
    with transaction.atomic():
        run(sql, params)
        assert run("SHOW work_mem") == [("4320kB",)]
    assert run("SHOW work_mem") != [("4320kB",)]


def test_safe_twin_on_commit_drop_inside_begin_commit_in_one_string():
    run(
        "BEGIN; CREATE TEMP TABLE evasion_t (a int) ON COMMIT DROP; "
        "INSERT INTO evasion_t VALUES (1); COMMIT"
    )
    assert run("SELECT to_regclass('pg_temp.evasion_t')") == [(None,)]


def test_safe_twin_unlisten_all():
    run("UNLISTEN *")
    assert run("SELECT count(*) FROM pg_listening_channels()") == [(0,)]


def test_safe_twin_dollar_quote_with_a_non_ascii_tag():
    assert run("SELECT $é$ ; SET work_mem = '1GB' $é$") == [
        (" ; SET work_mem = '1GB' ",)
    ]


def test_safe_twin_currval_after_nextval_in_atomic(evasion_seq):
    with transaction.atomic():
        (value,) = run("SELECT nextval('evasion_seq')")[0]
        assert run("SELECT currval('evasion_seq')") == [(value,)]


def test_safe_twin_a_function_in_an_ordinary_schema():
    with connections["direct"].cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION evasion_f() RETURNS int LANGUAGE sql AS 'SELECT 4330'"
        )
    try:
        assert run("SELECT evasion_f()") == [(4330,)]
    finally:
        with connections["direct"].cursor() as cursor:
            cursor.execute("DROP FUNCTION evasion_f()")


# --- callproc(): Django's cursor sends it past every execute wrapper ---------------


def test_guard_stops_callproc_of_a_session_function(superuser_conn):
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4340"
    try:
        with pytest.raises(SessionStateError) as caught, connection.cursor() as cur:
            cur.callproc("pg_advisory_lock", [4340])
        assert HAZARDS["advisory_lock"].instead in str(caught.value)
        assert superuser_conn.execute(held).fetchone() == (0,)
        with pytest.raises(SessionStateError), connection.cursor() as cursor:
            cursor.callproc("set_config", ["work_mem", "4340kB", False])
    finally:  # without the guard the lock was taken: free the pooled backend
        superuser_conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND objid = 4340"
        )


def test_safe_twin_callproc_inside_atomic():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.callproc("pg_advisory_xact_lock", [4341])
        cursor.callproc("set_config", ["work_mem", "4341kB", True])
        assert run("SHOW work_mem") == [("4341kB",)]


def test_callproc_is_guarded_on_a_new_connection_too():
    connection.close()
    with pytest.raises(SessionStateError), connection.cursor() as cursor:
        cursor.callproc("setseed", [0.5])


# --- messages ----------------------------------------------------------------------


def test_the_server_side_cursor_message_masks_literals():
    from django.db.models.expressions import RawSQL

    from core.models import Post

    Post.objects.create(title="x", content="y")
    connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = False
    secret = RawSQL("E'sk-\\'live'", [])
    query = Post.objects.annotate(key=secret).values_list("key", flat=True)
    try:
        with pytest.raises(SessionStateError) as caught:
            list(query.iterator(chunk_size=10))
    finally:
        connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True
    assert "sk-" not in str(caught.value)
    assert "'...'" in str(caught.value)
