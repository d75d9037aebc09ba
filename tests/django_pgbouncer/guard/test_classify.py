"""The session-state classifier: a table of statements, harmful and harmless."""

import pytest

from django_pgbouncer.guard import HAZARDS, session_state_find
from django_pgbouncer.guard.classify import worth_parsing

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
    # Unicode escapes (U&) spell a name or a string that no substring search sees
    ('SELECT U&"pg_advisory\\005Flock"(1)', "advisory_lock"),
    ("SELECT U&\"\\0073et_config\"('work_mem', '1MB', false)", "setting"),
    ('SET U&"work\\005Fmem" = 1', "setting"),
    ("SELECT set_config('work_mem', '1MB', U&'\\0066')", "setting"),
    ("SELECT U&\"!0073etseed\" UESCAPE '!' (0.5)", "random_seed"),
    # a -- comment ends at a carriage return too (scan.l: non_newline is [^\n\r])
    ("-- a comment\rSET work_mem = 1", "setting"),
    ("SELECT 1 -- note\r; LISTEN ch", "listen"),
    ("SELECT 1; --\rSELECT pg_advisory_lock(1)", "advisory_lock"),
    # escape (E'') and Unicode (U&'') strings as DO bodies: read once decoded
    ("DO E'BEGIN \\x53ET work_mem = 1; END'", "setting"),
    ("DO E'BEGIN PERFORM pg_advisory\\137lock(1); END'", "advisory_lock"),
    ("DO U&'BEGIN \\0053ET work_mem = 1; END'", "setting"),
    ("DO LANGUAGE plpgsql U&'BEGIN LISTEN ch; END'", "listen"),
    # EXECUTE of a constant string inside DO runs that string
    ("DO $$BEGIN EXECUTE 'SET work_mem = 1'; END$$", "setting"),
    ("DO $$BEGIN EXECUTE E'LISTEN \\x63h'; END$$", "listen"),
    (
        "DO $$BEGIN EXECUTE 'DO $i$BEGIN PERFORM setseed(0); END$i$'; END$$",
        "random_seed",
    ),
    ("DO $$DECLARE n int; BEGIN n := pg_advisory_lock(1); END$$", "advisory_lock"),
    ("DO $$BEGIN EXECUTE 'SET ' || 'work_mem = 1'; END$$", "setting"),
    # bodies libpg_query's PL/pgSQL cannot read without a catalog, read in pieces
    ("DO $$DECLARE r core_post[]; BEGIN SET work_mem = 1; END$$", "setting"),
    ("DO $$DECLARE r t[]; BEGIN EXECUTE 'LISTEN ch'; END$$", "listen"),
    (
        "DO $$DECLARE r t[]; BEGIN IF pg_try_advisory_lock(1) THEN END IF; END$$",
        "advisory_lock",
    ),
    ("DO $$DECLARE r t[]; BEGIN PERFORM setseed(0); END$$", "random_seed"),
    (
        "DO $$DECLARE r t[]; n int; BEGIN n := pg_advisory_lock(1); END$$",
        "advisory_lock",
    ),
    ("DO $$BEGIN EXECUTE $q$LISTEN ch$q$::text; END$$", "listen"),
    ("DO $$BEGIN IF pg_try_advisory_lock(1) THEN NULL; END IF; END$$", "advisory_lock"),
    ("DO $$DECLARE n int := setseed(0); BEGIN NULL; END$$", "random_seed"),
    # temporary objects in pg_temp, functions and types included
    (
        "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "temp_object",
    ),
    ("CREATE OR REPLACE PROCEDURE pg_temp.p() LANGUAGE sql AS ''", "temp_object"),
    ("CREATE DOMAIN pg_temp.d AS int", "temp_object"),
    ("CREATE TYPE pg_temp.pair AS (a int, b int)", "temp_object"),
    ("CREATE TYPE pg_temp.mood AS ENUM ('sad', 'ok')", "temp_object"),
    ('CREATE TABLE "pg_temp".t (a int)', "temp_table"),
    ("CREATE SEQUENCE pg_temp_3.s", "temp_table"),
    ("CREATE TEMP TABLE t (a int) ON COMMIT DROP; SELECT 1", "temp_table"),
    # per-session sequence state
    ("SELECT currval('s')", "sequence_state"),
    ("SELECT pg_catalog.currval('s'::regclass)", "sequence_state"),
    ("SELECT lastval()", "sequence_state"),
    ("INSERT INTO t (id) VALUES (lastval())", "sequence_state"),
    # the seed of random()
    ("SELECT setseed(0.5)", "random_seed"),
    ("SELECT random() FROM (SELECT setseed(0.5)) s", "random_seed"),
    # custom settings whose prefix is a keyword
    ("SET transaction.x = 1", "setting"),
    ("SET local.x = 1", "setting"),
    ("SET session.x = 1", "setting"),
    ("SET constraints.x TO 'y'", "setting"),
    ("SET SESSION local.x = 1", "setting"),
    ("RESET transaction.x", "setting"),
    ("SET standard_conforming_strings = off", "setting"),
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
    # RESET of a parameter PgBouncer tracks
    "RESET TIME ZONE",
    "RESET standard_conforming_strings",
    "SET standard_conforming_strings = on",
    'RESET "DateStyle"',
    # set_config(..., is_local) with a cast true
    "SELECT set_config('work_mem', '1MB', true::boolean)",
    "SELECT set_config('work_mem', '1MB', 'true'::bool)",
    "SELECT set_config('work_mem', '1MB', CAST('on' AS boolean))",
    # ON COMMIT DROP inside BEGIN ... COMMIT in one string
    "BEGIN; CREATE TEMP TABLE t (a int) ON COMMIT DROP; INSERT INTO t VALUES (1); "
    "COMMIT",
    "START TRANSACTION; CREATE TEMP TABLE t (a int) ON COMMIT DROP",
    # UNLISTEN leaves nothing behind
    "UNLISTEN *",
    "UNLISTEN ch",
    # a dollar-quoted literal whose tag is not ASCII
    "SELECT $é$ ; SET work_mem = 1 $é$",
    "SELECT $标签$pg_advisory_lock(1); LISTEN ch$标签$",
    # words that only look like the new hazards
    "SELECT nextval('s')",
    "SELECT random()",
    "SELECT currval FROM t",
    "SELECT 'currval(1)', $$setseed(1)$$",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT currval(''s'')'",
    "CREATE TABLE pg_temporary (a int)",
    "DO $$BEGIN EXECUTE format('SET %I = 1', 'x'); END$$",
    "DO $$BEGIN EXECUTE 'SET LOCAL work_mem = 1'; END$$",
    "DO $$BEGIN CREATE TEMP TABLE t (a int) ON COMMIT DROP; END$$",
    "DO $$DECLARE r t[]; BEGIN RAISE NOTICE 'SET work_mem = 1'; END$$",
    "SELECT 1 -- note\r; SELECT 2",
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


# A bound is_local decides: Django's %s and psycopg's %(name)s, one row or many.
BOUND = [
    ("SELECT set_config('work_mem', %s, %s)", ["1MB", True], False, False),
    ("SELECT set_config('work_mem', %s, %s)", ["1MB", False], False, True),
    ("SELECT set_config('work_mem', %s, %s)", ["1MB", "on"], False, False),
    ("SELECT set_config('work_mem', %s, %s)", ["1MB"], False, True),
    (
        "SELECT set_config(%(n)s, %(v)s, %(l)s)",
        {"n": "a", "v": "b", "l": True},
        False,
        False,
    ),
    (
        "SELECT set_config(%(n)s, %(v)s, %(l)s)",
        {"n": "a", "v": "b", "l": 0},
        False,
        True,
    ),
    ("SELECT set_config('a', %s, %s)", [["1", True], ["2", True]], True, False),
    ("SELECT set_config('a', %s, %s)", [["1", True], ["2", False]], True, True),
    ("SELECT %s; SELECT set_config('a', 'b', %s)", ["x", True], False, False),
    ("SET work_mem = %s", ["1MB"], False, True),
    ("SELECT pg_advisory_lock(%s)", [1], False, True),
    ("CREATE TEMP SEQUENCE s INCREMENT BY %s", [2], False, True),
    ("SELECT set_config('a', %s, %s)", iter([["1", True]]), True, True),
]


@pytest.mark.parametrize(
    ("sql", "params", "many", "harmful"),
    BOUND,
    ids=[
        f"{s} {p if isinstance(p, list | dict) else 'rows from a generator'}"
        for s, p, _, _ in BOUND
    ],
)
def test_bound_parameters(sql, params, many, harmful):
    finding = session_state_find(sql, params=params, many=many)
    assert (finding is not None) is harmful


def test_text_that_cannot_be_encoded_is_no_finding():
    # psycopg refuses to send it: the query fails before it reaches the server.
    assert session_state_find("SET x.y = '\ud800'") is None


def test_rows_from_a_generator_are_left_for_executemany():
    rows = iter([["1", True]])
    assert session_state_find("SELECT set_config('a', %s, %s)", params=rows, many=True)
    assert next(rows) == ["1", True]


@pytest.mark.parametrize(
    ("sql", "secret"),
    [
        ("SET app.api_key = E'sk-\\'live'", "sk-"),
        ("SET app.api_key = U&'sk\\002Dlive'", "sk"),
        ("SET app.api_key = $k$sk-live$k$", "sk-live"),
        ("SET app.api_key = $é$sk-live$é$", "sk-live"),
        ("SELECT set_config('app.key', 'sk-live', false)", "sk-live"),
        ("SET app.api_key = 'sk-live' -- it's sk-live2", "sk-live"),
        ("DO E'BEGIN SET app.k = ''sk-live''; END'", "sk-live"),
        ("DO $$BEGIN EXECUTE 'SET app.k = ''sk-live'''; END$$", "sk-live"),
    ],
    ids=[
        "E-string",
        "U&-string",
        "dollar",
        "non-ASCII dollar",
        "set_config",
        "comment",
        "DO body",
        "EXECUTE in DO",
    ],
)
def test_every_finding_masks_literals_and_comments(sql, secret):
    finding = session_state_find(sql)
    assert finding is not None
    assert secret not in finding.statement
    assert "'...'" in finding.statement


def test_a_finding_in_a_do_block_names_the_inner_statement():
    finding = session_state_find("DO $$BEGIN EXECUTE 'SET work_mem = 1'; END$$")
    assert finding is not None
    assert finding.statement == "SET work_mem = 1 (in a DO block)"


def test_the_same_text_is_read_once():
    from django_pgbouncer.guard.classify import statement_candidates

    statement_candidates.cache_clear()
    for _ in range(3):
        session_state_find("UPDATE t SET a = %s WHERE id = %s", params=[1, 2])
    assert statement_candidates.cache_info().hits == 2


# The prefilter: only what no escape, comment or non-ASCII character can disguise
# passes unread; anything else reaches the parser.
PREFILTER = [
    ("SELECT 1", False),
    ('SELECT "core_post"."id" FROM "core_post" WHERE "core_post"."id" = %s', False),
    ("INSERT INTO t (a) VALUES (%s)", False),
    ("UPDATE t SET a = 1", True),
    ('SELECT U&"\\0073etseed"(0)', True),
    ('SELECT u&"x"', True),
    ("SELECT E'\\x41'", True),
    ("SELECT 1 -- x", True),
    ("SELECT 1 /* x */", True),
    ("SELECT 'é'", True),
    ("SELECT currval('s')", True),
    ("SELECT lastval()", True),
    ("DO 'BEGIN NULL; END'", True),
    ("SELECT 1 INTO pg_temp.t", True),
]


@pytest.mark.parametrize(("sql", "read"), PREFILTER, ids=[s for s, _ in PREFILTER])
def test_the_prefilter_sends_anything_it_cannot_rule_out(sql, read):
    assert worth_parsing(sql) is read
