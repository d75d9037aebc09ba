"""What the renderer accepts, a real PgBouncer accepts: for generated upstream
hosts, database names, user names and settings, either the renderer refuses them
with a ConfigError, or the installed PgBouncer starts on its files and reports
back exactly those values (SHOW DATABASES, SHOW USERS, SHOW CONFIG)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st

from devstack.ephemeral import scratch_dir
from devstack.process import Account, Child, port_pick
from django_pgbouncer import ConfigError
from django_pgbouncer.render import (
    ini_render,
    pgbouncer_binary,
    pgbouncer_config_from_env,
    pgbouncer_version_detect,
    private_files_write,
    scram_verifier,
    userlist_render,
)
from tests.fixtures.stack import missing_servers

pytestmark = pytest.mark.servers

CONSOLE = ("probe_console", "probe-console-pw")
# About 8 s: a third of the examples start a PgBouncer (0.1 s each).
EXAMPLES = 200


@pytest.fixture(scope="module")
def binary() -> str:
    found = pgbouncer_binary()
    if found is None:
        missing_servers("PgBouncer is not installed (apt-get install pgbouncer)")
    return found


def rendered(env: Mapping[str, str], port: int, auth_file: str) -> tuple[str, str]:
    """Both files' text, as pgbouncer_files_write would write them (verifiers of
    the passwords, without asking a PostgreSQL to store them)."""
    config = pgbouncer_config_from_env(
        {
            **env,
            "PGBOUNCER_ADMIN_URL": f"postgres://{CONSOLE[0]}:{CONSOLE[1]}@h/pgbouncer",
            "ADMIN_USERS": CONSOLE[0],
            "LISTEN_PORT": str(port),
            "UNIX_SOCKET_DIR": "",
        },
        version=pgbouncer_version_detect(),
        auth_file=auth_file,
    )
    verifiers = {name: scram_verifier(password) for name, password in config.users}
    return ini_render(config), userlist_render(verifiers)


@contextmanager
def pgbouncer_on(binary: str, env: Mapping[str, str]) -> Iterator[Any]:
    """PgBouncer started on the rendered files; yields its admin console."""
    workdir, account, port = (
        scratch_dir("test-accepts-"),
        Account.for_servers(),
        port_pick(),
    )
    try:
        ini, userlist = workdir / "pgbouncer.ini", workdir / "userlist.txt"
        ini_text, userlist_text = rendered(env, port, str(userlist))
        note(f"pgbouncer.ini:\n{ini_text}userlist.txt:\n{userlist_text}")
        private_files_write({ini: ini_text, userlist: userlist_text})
        account.own(workdir, ini, userlist)
        child = Child(
            "PgBouncer",
            [binary, str(ini)],
            log=workdir / "pgbouncer.log",
            host="127.0.0.1",
            port=port,
            account=account,
        )
        child.start(timeout=10)
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                user=CONSOLE[0],
                password=CONSOLE[1],
                dbname="pgbouncer",
                autocommit=True,
            ) as console:
                yield console
        finally:
            child.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def show(console: Any, what: str) -> list[dict[str, Any]]:
    cur = console.execute(f"SHOW {what}", prepare=False)
    names = [col.name for col in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# Text the renderer should take: printable, in any script, quotes and comment
# marks included.
PRINTABLE = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
    ),
    min_size=1,
    max_size=70,
)
# A character no line of PgBouncer's files may hold, inside printable text.
UNWRITABLE = st.tuples(
    PRINTABLE,
    st.characters(codec="utf-8", categories=["Cc", "Cf", "Co", "Cn", "Zl", "Zp"]),
    PRINTABLE,
).map("".join)
FIELDS = {
    "host": (PRINTABLE, UNWRITABLE),
    "name": (
        st.from_regex(r"[A-Za-z0-9_.\-]{1,63}", fullmatch=True),
        st.one_of(st.from_regex(r"[A-Za-z0-9_.\-]{64,80}", fullmatch=True), PRINTABLE),
    ),
    "user": (
        PRINTABLE,
        st.one_of(UNWRITABLE, PRINTABLE.map(lambda t: t + "\u00e9" * 64)),
    ),
    "query": (PRINTABLE, UNWRITABLE),
    "timeout": (
        st.from_regex(r"[0-9]{1,9}(\.[0-9]{1,6})?", fullmatch=True),
        st.one_of(
            st.from_regex(r"[0-9]{10,14}(\.[0-9]{1,8})?", fullmatch=True),
            st.from_regex(r"0\.[0-9]{7,9}", fullmatch=True),
            st.text(max_size=8),
        ),
    ),
    "size": (
        st.integers(1, 2**31 - 1).map(str),
        st.one_of(st.integers(2**31, 2**64).map(str), st.text(max_size=8)),
    ),
}


@st.composite
def variables(draw: st.DrawFn) -> dict[str, str]:
    """Values the renderer should take, but for one field (or none) drawn from
    past the edge: a control character, a name too long for PgBouncer, a number
    it would wrap. The renderer must refuse it, or PgBouncer read it back."""
    hostile = draw(st.sampled_from([None, *FIELDS]))
    return {
        field: draw(wild if field == hostile else tame)
        for field, (tame, wild) in FIELDS.items()
    }


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(values=variables())
@example(  # what a percent-encoded newline decodes into, refused
    values={
        "host": "db\n[pgbouncer]",
        "name": "app",
        "user": "app",
        "query": "x",
        "timeout": "1",
        "size": "1",
    }
)
@example(  # nasty but valid: quotes, comment marks, spaces, non-ASCII, long
    values={
        "host": " 'db' #;=, ünï ",
        "name": "a.b-c_d" + "e" * 56,
        "user": "\"u\" 's' ;# é" + "x" * 100,
        "query": "SELECT ';#' -- x",
        "timeout": "0.000001",
        "size": str(2**31 - 1),
    }
)
def test_what_the_renderer_accepts_pgbouncer_reads_back(binary, values):
    host, name, user = values["host"], values["name"], values["user"]
    query, timeout, size = values["query"], values["timeout"], values["size"]
    env = {
        "DB_HOST": host,
        "DB_NAME": name,
        "DB_USER": user,
        "DB_PASSWORD": "pw",
        "SERVER_CHECK_QUERY": query,
        "QUERY_TIMEOUT": timeout,
        "DEFAULT_POOL_SIZE": size,
    }
    try:
        rendered(env, 1, "/x")
    except ConfigError as error:
        note(f"refused: {error}")
        event(f"refused {error.variable}")
        return
    event("read back by PgBouncer")
    with pgbouncer_on(binary, env) as console:
        databases = {row["name"]: row for row in show(console, "DATABASES")}
        assert databases[name]["host"] == host.strip()
        assert databases[name]["database"] == name
        assert user in {row["name"] for row in show(console, "USERS")}
        config = {row["key"]: row["value"] for row in show(console, "CONFIG")}
        assert config["server_check_query"] == query.strip()
        # SHOW CONFIG prints seconds with six significant digits (%g).
        shown = float(config["query_timeout"])
        assert shown == pytest.approx(float(timeout), rel=1e-5, abs=1e-6)
        assert config["default_pool_size"] == str(int(size))
