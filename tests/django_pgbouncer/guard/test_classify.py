"""The session-state classifier: a table of statements, harmful and harmless."""

import pytest

from django_pgbouncer.guard import HAZARDS, session_state_find

HARMFUL = [
    # settings
    ("SET statement_timeout = 5000", "setting"),
    ("set statement_timeout to 5000", "setting"),
    ("SET SESSION statement_timeout = 5000", "setting"),
    ("SeT search_path TO app, public", "setting"),
    ("SET myapp.tenant = '42'", "setting"),
    ('SET "lock_timeout" = 10', "setting"),
    (
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "setting",
    ),
    ("RESET statement_timeout", "setting"),
    ("RESET ALL", "setting"),
    ("SELECT set_config('statement_timeout', '5s', false)", "setting"),
    ("select SET_CONFIG('search_path', 'x', FALSE)", "setting"),
    ("SELECT pg_catalog.set_config('work_mem', '64MB', 'f')", "setting"),
    ("SELECT set_config('work_mem', %s, %s)", "setting"),
    ("SELECT set_config(name, value, false) FROM settings_to_apply", "setting"),
    ("SELECT 1; SET work_mem = '1GB'", "setting"),
    ("/* harmless? */ SET work_mem = '1GB'", "setting"),
    ("-- a comment\nSET work_mem = '1GB'", "setting"),
    ("\n\t  SET\nwork_mem\n=\n'1GB'  ", "setting"),
    ("SELECT 'a;b'; SET work_mem = 1", "setting"),
    # roles
    ("SET ROLE reporting", "role"),
    ("set role none", "role"),
    ("SET SESSION ROLE admin", "role"),
    ("SET SESSION AUTHORIZATION 'alice'", "role"),
    ("RESET ROLE", "role"),
    ("RESET SESSION AUTHORIZATION", "role"),
    # LISTEN
    ("LISTEN new_posts", "listen"),
    ('listen "Channel"', "listen"),
    ("UNLISTEN *", "listen"),
    # advisory locks
    ("SELECT pg_advisory_lock(42)", "advisory_lock"),
    ("SELECT pg_try_advisory_lock(1, 2)", "advisory_lock"),
    ("select PG_ADVISORY_LOCK_SHARED(7)", "advisory_lock"),
    ("SELECT pg_try_advisory_lock_shared(7)", "advisory_lock"),
    ("SELECT pg_advisory_unlock(42)", "advisory_lock"),
    ("SELECT pg_advisory_unlock_all()", "advisory_lock"),
    ("SELECT pg_catalog.pg_advisory_lock (42)", "advisory_lock"),
    ('SELECT "pg_advisory_lock"(42)', "advisory_lock"),
    ("SELECT id FROM jobs WHERE pg_try_advisory_lock(id) LIMIT 1", "advisory_lock"),
    ("WITH j AS (SELECT 1 AS id) SELECT pg_advisory_lock(id) FROM j", "advisory_lock"),
    ("EXPLAIN ANALYZE SELECT pg_advisory_lock(1)", "advisory_lock"),
    # prepared statements
    ("PREPARE q(int) AS SELECT $1", "prepare"),
    ("EXECUTE q(1)", "prepare"),
    ("DEALLOCATE q", "prepare"),
    ("DEALLOCATE ALL", "prepare"),
    # held cursors
    ('DECLARE "_django_curs_1" NO SCROLL CURSOR WITH HOLD FOR SELECT 1', "hold_cursor"),
    ("declare c cursor with hold for select * from t", "hold_cursor"),
    # temporary tables
    ("CREATE TEMP TABLE scratch (id int)", "temp_table"),
    ("CREATE TEMPORARY TABLE scratch AS SELECT 1", "temp_table"),
    ("CREATE LOCAL TEMP TABLE IF NOT EXISTS scratch (id int)", "temp_table"),
    ("CREATE TEMP TABLE s (id int) ON COMMIT DELETE ROWS", "temp_table"),
    ("CREATE TEMP VIEW v AS SELECT 1", "temp_table"),
    ("CREATE TEMP SEQUENCE s", "temp_table"),
    ("SELECT * INTO TEMP TABLE copy FROM t", "temp_table"),
    ("SELECT * INTO TEMPORARY copy FROM t", "temp_table"),
    # LOAD
    ("LOAD 'auto_explain'", "load"),
    # DO blocks run their body
    ("DO $$ BEGIN PERFORM pg_advisory_lock(1); END $$", "advisory_lock"),
    ("DO $body$ BEGIN SET work_mem = '1GB'; END $body$", "setting"),
    ("DO $$ BEGIN IF true THEN LISTEN ch; END IF; END $$", "listen"),
    (
        "DO LANGUAGE plpgsql 'BEGIN PERFORM set_config(''x'', ''1'', false); END'",
        "setting",
    ),
    # temporary objects by schema, by SELECT INTO, behind parentheses or EXPLAIN
    ("CREATE TABLE pg_temp.t (a int)", "temp_table"),
    ("CREATE VIEW pg_temp.v AS SELECT 1", "temp_table"),
    ("CREATE TABLE IF NOT EXISTS pg_temp.t (a int)", "temp_table"),
    ("SELECT 1 AS a INTO pg_temp.t4", "temp_table"),
    ("SELECT 1 AS a INTO LOCAL TEMP t2", "temp_table"),
    ("SELECT 1 AS a INTO TEMPORARY TABLE t3", "temp_table"),
    ("(SELECT 1 AS a INTO TEMP t1)", "temp_table"),
    ("EXPLAIN ANALYZE CREATE TEMP TABLE t5 AS SELECT 1", "temp_table"),
    ("EXPLAIN (ANALYZE, BUFFERS) SELECT pg_advisory_lock(1)", "advisory_lock"),
    # DO blocks whatever the white space
    ("DO\r\n$$\r\nBEGIN\r\n  SET search_path = x;\r\nEND\r\n$$", "setting"),
    ("DO\x0c$$BEGIN PERFORM pg_advisory_lock(1); END$$", "advisory_lock"),
    # others
    ("SELECT dblink_connect('c', 'dbname=app')", "dblink"),
    ("SET standard_conforming_strings = off", "setting"),
    # dollar quoting and string literals cannot hide the next statement
    ("SELECT $tag$ it's $$ fine $tag$; LISTEN ch", "listen"),
    ("SELECT E'it\\'s; fine'; SET work_mem = 1", "setting"),
]

HARMLESS = [
    "SELECT 1",
    "SELECT * FROM core_post ORDER BY created_at DESC LIMIT 20",
    "UPDATE core_post SET title = 'x' WHERE id = 1",
    "INSERT INTO settings (name) VALUES ('SET work_mem = 1')",
    "SET LOCAL statement_timeout = 5000",
    "set local search_path to app",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET CONSTRAINTS ALL DEFERRED",
    "SET TIME ZONE 'UTC'",
    "SET TIMEZONE TO 'Europe/Paris'",
    "SET client_encoding = 'UTF8'",
    "SET application_name = 'web'",
    "SET DateStyle = ISO",
    "SET NAMES 'UTF8'",
    "RESET TimeZone",
    "SELECT set_config('statement_timeout', '5s', true)",
    "SELECT set_config('search_path', 'x', TRUE)",
    "SELECT set_config('application_name', 'web', false)",
    "SELECT pg_advisory_xact_lock(42)",
    "SELECT pg_try_advisory_xact_lock(42)",
    "SELECT pg_advisory_xact_lock_shared(42)",
    "SELECT 'pg_advisory_lock(1)'",
    "SELECT $$pg_advisory_lock(1)$$",
    "SELECT $x$ SET work_mem = 1; LISTEN c $x$",
    "SELECT E'\\' SET work_mem = 1'",
    "SELECT 1 -- SET work_mem = 1",
    "SELECT 1 /* LISTEN c; /* nested */ SET x = 1 */",
    'SELECT "SET" FROM t',
    'SELECT pg_advisory_lock FROM "LISTEN"',
    "SELECT my_pg_advisory_lock_wrapper(1)",
    "NOTIFY new_posts, 'hello'",
    "SELECT pg_notify('new_posts', 'hello')",
    "DECLARE c CURSOR FOR SELECT 1",
    "DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1",
    "CREATE TABLE temp (id int)",
    "CREATE TABLE t AS SELECT temp FROM x",
    "CREATE INDEX CONCURRENTLY i ON t (temp)",
    "PREPARE TRANSACTION 'tx1'",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN SET x = 1; END $$",
    "SELECT * FROM jobs FOR UPDATE SKIP LOCKED",
    "SELECT offset_reset FROM t",
    "VACUUM ANALYZE core_post",
    "",
    ";;",
    "DO $$ BEGIN PERFORM pg_advisory_xact_lock(1); END $$",
    "DO $$ BEGIN SET LOCAL work_mem = '1GB'; END $$",
    "DO $$BEGIN EXECUTE format('SELECT %L', 'x'); END$$",
    "DO $$DECLARE temp int; BEGIN SELECT 1 INTO temp; END$$",
    "SELECT * INTO temp FROM (SELECT 1) s",
    "SET \"TimeZone\" = 'UTC'",
    "INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = t.n + 1",
    "INSERT INTO t (id) VALUES (1) ON CONFLICT DO NOTHING",
    "SELECT dblink('dbname=app', 'SELECT 1') AS t(a int)",
]


@pytest.mark.parametrize(("sql", "kind"), HARMFUL, ids=[s for s, _ in HARMFUL])
def test_harmful(sql, kind):
    finding = session_state_find(sql)
    assert finding is not None
    assert finding.hazard.kind == kind


@pytest.mark.parametrize("sql", HARMLESS, ids=HARMLESS)
def test_harmless(sql):
    assert session_state_find(sql) is None


@pytest.mark.parametrize(
    ("in_transaction", "harmful"),
    [(True, False), (False, True)],
    ids=["inside-atomic", "autocommit"],
)
def test_temp_table_on_commit_drop_is_safe_only_inside_a_transaction(
    in_transaction, harmful
):
    sql = "CREATE TEMP TABLE s (id int) ON COMMIT DROP"
    finding = session_state_find(sql, in_transaction=in_transaction)
    assert (finding is not None) is harmful


def test_the_finding_names_the_statement_not_the_whole_string():
    finding = session_state_find("SELECT 1;\n  SET   work_mem =\n 1 ; SELECT 2")
    assert finding is not None
    assert finding.statement == "SET work_mem = 1"


def test_the_finding_masks_string_literals():
    finding = session_state_find("SET app.api_key = 'sk-live-123'")
    assert finding is not None
    assert "sk-live-123" not in finding.statement
    assert finding.statement == "SET app.api_key = '...'"


def test_every_hazard_says_why_and_what_instead():
    for hazard in HAZARDS.values():
        assert len(hazard.why) > 30
        assert len(hazard.instead) > 10


def test_the_table_is_large_enough():
    assert len(HARMFUL) + len(HARMLESS) >= 60
