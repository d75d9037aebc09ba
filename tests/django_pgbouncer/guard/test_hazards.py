"""Each session-state hazard, through a real PgBouncer in transaction mode: first the
harm without protection, then the guard stopping it with its message, then the safe
twin running without complaint."""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection, connections, transaction

from django_pgbouncer import session_state_allowed
from django_pgbouncer.errors import SessionStateError

# transaction=True: these tests are about where transactions end, so no test-wide
# transaction may wrap them.
pytestmark = [
    pytest.mark.servers,
    pytest.mark.django_db(databases=["default", "direct"], transaction=True),
]


@contextmanager
def client(url: str) -> Iterator[psycopg.Connection]:
    """A plain client of PgBouncer, autocommit as Django's connections are."""
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


@contextmanager
def guarded(hazard: str) -> Iterator[None]:
    """Expect the guard on the pooled alias to stop the block, naming the fix."""
    with pytest.raises(SessionStateError) as caught:
        yield
    message = str(caught.value)
    assert "transaction pooling mode" in message
    assert "Instead: " in message
    assert hazard in message


def run(sql: str, using: str = "default") -> list[tuple[object, ...]]:
    with connections[using].cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall() if cursor.description else []


# --- settings -------------------------------------------------------------------------


def test_harm_a_session_setting_leaks_to_another_client(hazard_bouncer):
    with client(hazard_bouncer) as a, client(hazard_bouncer) as b:
        a.execute("SET statement_timeout = '4321ms'")
        seen = [b.execute("SHOW statement_timeout").fetchone() for _ in range(5)]
        a.execute("RESET statement_timeout")  # tidy: most likely the same backend
    assert ("4321ms",) in seen


def test_guard_stops_a_session_setting():
    with guarded("SET LOCAL"):
        run("SET statement_timeout = '4321ms'")
    with guarded("SET LOCAL"):
        run("SELECT set_config('statement_timeout', '4321ms', false)")


def test_safe_twin_set_local_in_atomic():
    with transaction.atomic():
        run("SET LOCAL statement_timeout = '4321ms'")
        assert run("SHOW statement_timeout") == [("4321ms",)]
    assert run("SHOW statement_timeout") != [("4321ms",)]


# --- advisory locks -------------------------------------------------------------------


def test_harm_a_session_lock_outlives_its_client(hazard_bouncer, superuser_conn):
    with client(hazard_bouncer) as a:
        a.execute("SELECT pg_advisory_lock(4242)")
    # The client is gone; PostgreSQL still has a backend holding the lock.
    held = superuser_conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
        " AND granted"
    ).fetchone()[0]
    assert held == 1
    superuser_conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_locks"
        " WHERE locktype = 'advisory' AND objid = 4242"
    )


def test_guard_stops_a_session_lock():
    with guarded("pg_advisory_xact_lock"):
        run("SELECT pg_advisory_lock(4242)")


def test_safe_twin_xact_lock_is_released_at_commit(superuser_conn):
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243"
    with transaction.atomic():
        run("SELECT pg_advisory_xact_lock(4243)")
        assert superuser_conn.execute(held).fetchone() == (1,)
    assert superuser_conn.execute(held).fetchone() == (0,)


# --- held cursors ---------------------------------------------------------------------


def test_harm_a_held_cursor_is_gone_on_the_next_transaction(hazard_bouncer):
    with client(hazard_bouncer) as a, client(hazard_bouncer) as b:
        a.execute("DECLARE c CURSOR WITH HOLD FOR SELECT generate_series(1, 10)")
        with b.transaction():
            b.execute("SELECT 1")  # takes the server connection that holds c
            with pytest.raises(psycopg.errors.InvalidCursorName):
                a.execute("FETCH 5 FROM c")


def test_guard_stops_a_held_cursor():
    with guarded("DISABLE_SERVER_SIDE_CURSORS"):
        run("DECLARE c CURSOR WITH HOLD FOR SELECT 1")


def test_safe_twin_server_side_cursor_on_the_direct_alias():
    from core.models import Post

    Post.objects.using("direct").bulk_create(
        Post(title=f"d{i}", content="") for i in range(30)
    )
    assert connections["direct"].features.can_use_chunked_reads
    count = sum(1 for _ in Post.objects.using("direct").iterator(chunk_size=7))
    assert count >= 30


# --- temporary tables -----------------------------------------------------------------


def test_harm_a_temp_table_vanishes_and_appears_elsewhere(hazard_bouncer):
    with client(hazard_bouncer) as a, client(hazard_bouncer) as b:
        a.execute("CREATE TEMP TABLE mine (id int)")
        with b.transaction():
            # b got a's server connection: a's table is in b's session now...
            assert b.execute("SELECT count(*) FROM mine").fetchone() == (0,)
            # ...and a, on the other server connection, cannot find it.
            with pytest.raises(psycopg.errors.UndefinedTable):
                a.execute("SELECT count(*) FROM mine")
        b.execute("DROP TABLE IF EXISTS mine")


def test_guard_stops_a_temp_table():
    with guarded("ON COMMIT DROP"):
        run("CREATE TEMP TABLE mine (id int)")


def test_safe_twin_temp_table_on_commit_drop_in_atomic():
    with transaction.atomic():
        run("CREATE TEMP TABLE mine (id int) ON COMMIT DROP")
        run("INSERT INTO mine VALUES (1)")
        assert run("SELECT count(*) FROM mine") == [(1,)]
    assert run("SELECT to_regclass('pg_temp.mine')") == [(None,)]  # gone at commit


# --- prepared statements --------------------------------------------------------------


def test_harm_a_prepared_statement_is_missing_on_another_server(hazard_bouncer):
    with client(hazard_bouncer) as a, client(hazard_bouncer) as b:
        a.execute("PREPARE q AS SELECT 1")
        with b.transaction():
            b.execute("SELECT 1")
            with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                a.execute("EXECUTE q")
        b.execute("DEALLOCATE ALL")


def test_guard_stops_prepare():
    with guarded("prepare_threshold=None"):
        run("PREPARE q AS SELECT 1")


def test_safe_twin_prepare_on_the_direct_alias():
    run("PREPARE q AS SELECT 41 + 1", using="direct")
    assert run("EXECUTE q", using="direct") == [(42,)]
    run("DEALLOCATE q", using="direct")


# --- LISTEN ---------------------------------------------------------------------------


def test_harm_listen_never_hears_through_pgbouncer(hazard_bouncer, stack):
    with (
        client(hazard_bouncer) as a,
        client(hazard_bouncer) as b,
        client(stack.direct_url.url()) as sender,
    ):
        a.execute("LISTEN news")
        with b.transaction():
            b.execute("SELECT 1")  # b now holds the server connection that listens
            sender.execute("NOTIFY news, 'hello'")
            a.execute("SELECT 1")  # a runs on the other one
            assert list(a.notifies(timeout=0.5, stop_after=1)) == []
            b.execute("UNLISTEN *")


def test_guard_stops_listen():
    with guarded("'direct' alias"):
        run("LISTEN news")


def test_safe_twin_listen_on_a_direct_connection(stack):
    with client(stack.direct_url.url()) as a, client(stack.direct_url.url()) as b:
        a.execute("LISTEN news")
        b.execute("NOTIFY news, 'hello'")
        heard = [n.payload for n in a.notifies(timeout=2, stop_after=1)]
    assert heard == ["hello"]


# --- roles ----------------------------------------------------------------------------


def test_harm_a_role_leaks_to_another_client(hazard_bouncer, superuser_conn):
    superuser_conn.execute(
        "DO $$ BEGIN CREATE ROLE reporting; EXCEPTION WHEN duplicate_object THEN "
        "NULL; END $$"
    )
    superuser_conn.execute("GRANT reporting TO app")
    with client(hazard_bouncer) as a, client(hazard_bouncer) as b:
        a.execute("SET ROLE reporting")
        seen = [b.execute("SELECT current_user").fetchone() for _ in range(5)]
        a.execute("RESET ROLE")
    assert ("reporting",) in seen


def test_guard_stops_set_role():
    with guarded("separate login role"):
        run("SET ROLE app")


# --- modes and the opt-out ------------------------------------------------------------


@pytest.fixture
def guard_mode():
    connection.ensure_connection()
    (guard,) = [w for w in connection.execute_wrappers if hasattr(w, "mode")]
    saved = guard.mode

    def set_mode(mode):
        guard.mode = mode

    yield set_mode
    guard.mode = saved


def test_log_mode_runs_the_statement_and_logs_it(guard_mode, caplog):
    guard_mode("log")
    with transaction.atomic():  # one server connection: SET and RESET stay together
        run("SET work_mem = '8MB'")
        run("RESET work_mem")
    assert "SET work_mem = '...'" in caplog.text  # literals masked
    assert "SET LOCAL" in caplog.text


def test_off_mode_is_silent(guard_mode, caplog):
    guard_mode("off")
    with transaction.atomic():
        run("SET work_mem = '8MB'")
        run("RESET work_mem")
    assert caplog.text == ""


def test_session_state_allowed_lets_a_block_through():
    with transaction.atomic(), session_state_allowed():
        run("SET work_mem = '8MB'")
        assert run("SHOW work_mem") == [("8MB",)]
        run("RESET work_mem")
    with guarded("SET LOCAL"):
        run("SET work_mem = '8MB'")


def test_guard_survives_a_connection_opened_inside_execute_wrapper():
    connection.close()

    def passthrough(execute, sql, params, many, context):
        return execute(sql, params, many, context)

    with connection.execute_wrapper(passthrough):
        run("SELECT 1")  # opens the connection: the guard is installed now
    with guarded("SET LOCAL"):
        run("SET work_mem = '8MB'")


def test_guard_reads_psycopg_composed_sql():
    from psycopg import sql

    statement = sql.SQL("SET {} = {}").format(
        sql.Identifier("work_mem"), sql.Literal("8MB")
    )
    with guarded("SET LOCAL"), connection.cursor() as cursor:
        cursor.execute(statement)


def test_guard_stops_a_server_side_cursor_outside_atomic():
    from core.models import Post

    Post.objects.create(title="x", content="y")
    connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = False
    try:
        with guarded("DISABLE_SERVER_SIDE_CURSORS"):
            list(Post.objects.iterator(chunk_size=10))
        with transaction.atomic():  # inside one transaction it is safe
            assert len(list(Post.objects.iterator(chunk_size=10))) == 1
    finally:
        connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True


def test_the_direct_alias_is_not_guarded():
    run("SET work_mem = '8MB'", using="direct")
    run("RESET work_mem", using="direct")
