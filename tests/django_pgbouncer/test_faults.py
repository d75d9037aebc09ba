"""The pure core of the web side of faults (django_pgbouncer/faults.py): which
statements may write, which errors are which fault. Tables of cases."""

import psycopg
import pytest

from django_pgbouncer.faults import Fault, fault_classify, statement_may_write


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ('SELECT "core_post"."id" FROM "core_post"', False),
        ("  select 1", False),
        ("/* sqlcommenter */ SELECT 1", False),
        ("-- why\nSELECT 1", False),
        ("(SELECT 1) UNION (SELECT 2)", False),
        ("SELECT 1;", False),
        ("SAVEPOINT s1", False),
        ("RELEASE SAVEPOINT s1", False),
        ("ROLLBACK TO SAVEPOINT s1", False),
        ("SHOW TimeZone", False),
        ("WITH x AS (SELECT 1) SELECT * FROM x", False),
        ('INSERT INTO "core_post" ("title") VALUES (%s)', True),
        ("UPDATE core_post SET title = 'x'", True),
        ("delete from core_post", True),
        ("/* c */ insert into t values (1)", True),
        ("WITH gone AS (DELETE FROM t RETURNING id) SELECT * FROM gone", True),
        ("SELECT 1; DELETE FROM t", True),
        ("CREATE TABLE t (id int)", True),
        ("TRUNCATE core_post", True),
        ("COPY t FROM STDIN", True),
        ("CALL my_proc()", True),
        ("", True),
    ],
    ids=lambda v: v if isinstance(v, bool) else " ".join(str(v).split())[:40],
)
def test_statement_may_write(sql, writes):
    assert statement_may_write(sql) is writes


@pytest.mark.parametrize(
    ("error", "closed", "fault"),
    [
        (
            psycopg.errors.AdminShutdown(
                "terminating connection due to administrator command"
            ),
            True,
            Fault.BACKEND_LOST,
        ),
        (
            psycopg.errors.ProtocolViolation("server conn crashed?"),
            True,
            Fault.BACKEND_LOST,
        ),
        (
            psycopg.OperationalError(
                "consuming input failed: server closed the connection unexpectedly"
            ),
            True,
            Fault.BACKEND_LOST,
        ),
        (
            psycopg.OperationalError("the connection is closed"),
            True,
            Fault.BACKEND_LOST,
        ),
        (
            psycopg.errors.ProtocolViolation("query_wait_timeout"),
            True,
            Fault.QUERY_WAIT_TIMEOUT,
        ),
        (
            psycopg.OperationalError(
                'connection failed: connection to server at "127.0.0.1", port 6432 '
                "failed: FATAL:  query_wait_timeout"
            ),
            True,
            Fault.QUERY_WAIT_TIMEOUT,
        ),
        (
            psycopg.OperationalError(
                'connection failed: connection to server at "127.0.0.1", port 6432 '
                "failed: FATAL:  no more connections allowed (max_client_conn)"
            ),
            True,
            Fault.MAX_CLIENT_CONN,
        ),
        (
            psycopg.errors.ProtocolViolation(
                "server login has been failing, try again later (server_login_retry)"
            ),
            True,
            Fault.POSTGRES_UNREACHABLE,
        ),
        (
            psycopg.OperationalError(
                'connection failed: connection to server at "127.0.0.1", port 6432 '
                "failed: FATAL:  the database system is starting up"
            ),
            True,
            Fault.POSTGRES_UNREACHABLE,
        ),
        (
            psycopg.errors.CannotConnectNow("the database system is in recovery mode"),
            True,
            Fault.POSTGRES_UNREACHABLE,
        ),
        (
            psycopg.errors.CrashShutdown(
                "terminating connection because of crash of another server process"
            ),
            True,
            Fault.BACKEND_LOST,
        ),
        (
            psycopg.OperationalError(
                'connection failed: connection to server at "127.0.0.1", port 6432 '
                "failed: Connection refused"
            ),
            True,
            Fault.PGBOUNCER_UNREACHABLE,
        ),
        (
            psycopg.OperationalError(
                'connection failed: connection to server at "127.0.0.1", port 6432 '
                'failed: FATAL:  password authentication failed for user "app"'
            ),
            True,
            None,
        ),
        (psycopg.errors.QueryCanceled("canceling statement"), False, None),
        (psycopg.errors.UndefinedTable('relation "x" does not exist'), False, None),
        (psycopg.errors.DeadlockDetected("deadlock detected"), False, None),
        (ValueError("connection failed"), True, None),
    ],
    ids=lambda v: v if not isinstance(v, Exception) else str(v)[-45:],
)
def test_fault_classify(error, closed, fault):
    assert fault_classify(error, connection_closed=closed) == fault


def test_fault_classify_reads_djangos_wrapped_error():
    from django.db import OperationalError
    from django.db.utils import DatabaseErrorWrapper

    class Wrapped:  # what DatabaseErrorWrapper needs of a connection wrapper
        Database = psycopg
        errors_occurred = False

    with pytest.raises(OperationalError) as wrapped, DatabaseErrorWrapper(Wrapped()):
        raise psycopg.errors.AdminShutdown("terminating connection")
    assert isinstance(wrapped.value.__cause__, psycopg.Error)
    assert fault_classify(wrapped.value, connection_closed=True) == Fault.BACKEND_LOST
