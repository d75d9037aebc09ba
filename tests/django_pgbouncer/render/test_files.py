"""Rendered files against the real servers: tricky passwords log in through a real
PgBouncer, the files are private, and a bad start keeps the last good files."""

import stat

import psycopg
import pytest
from psycopg import sql

from devstack.ephemeral import ephemeral_pgbouncer
from django_pgbouncer import ConfigError
from django_pgbouncer.render import (
    pgbouncer_files_write,
    pgbouncer_version_detect,
    private_files_write,
)

pytestmark = pytest.mark.servers

URL = "POSTGRES_DATABASE_URL"

TRICKY = [
    "p@ss:w/rd",
    "*%#;'\" \\x",
    "trailing space ",
    "ünï©ødé-密码",
    "'quoted'",
    "a" * 200,
]


@pytest.fixture(scope="module")
def renderer_url(stack):
    """A role of its own: rendering for `app` would store a new verifier for it,
    and the session's PgBouncer, holding the old one, could not log in again."""
    url = stack.direct_url.with_(user="renderer", password="renderer-pw")
    with psycopg.connect(
        stack.postgres.config.superuser_url().url(), autocommit=True
    ) as conn:
        conn.execute("CREATE ROLE renderer LOGIN PASSWORD 'renderer-pw'")
    return url


@pytest.mark.parametrize("case", range(len(TRICKY)))
def test_tricky_password_logs_in_through_pgbouncer(stack, superuser_conn, case):
    password, role = TRICKY[case], f"tricky_{case}"
    superuser_conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )
    upstream = stack.direct_url.with_(user=role, password=password)
    with ephemeral_pgbouncer(stack, "test-bouncer-", upstream=upstream) as bouncer:
        workdir = bouncer.config.workdir
        ini = (workdir / "pgbouncer.ini").read_text()
        userlist = (workdir / "userlist.txt").read_text()
        assert password not in ini
        assert password not in userlist
        through = upstream.with_(port=bouncer.config.port)
        for _ in range(2):  # the second login reuses the pooled server connection
            with psycopg.connect(through.url()) as conn:
                row = conn.execute("SELECT current_user, inet_server_port()").fetchone()
            assert row == (role, stack.settings.postgres_port)


def test_files_are_private(renderer_url, tmp_path):
    ini, userlist = pgbouncer_files_write(
        {"POSTGRES_DATABASE_URL": renderer_url.url()},
        directory=tmp_path,
        version=pgbouncer_version_detect(),
    )
    for path in (ini, userlist):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert userlist.read_text().startswith('"renderer" "SCRAM-SHA-256$4096:')


def test_the_server_keeps_the_same_password(renderer_url, tmp_path):
    pgbouncer_files_write(
        {"POSTGRES_DATABASE_URL": renderer_url.url()},
        directory=tmp_path,
        version=(1, 18),
    )
    with psycopg.connect(renderer_url.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    ("env", "variable", "problem"),
    [
        ({"POOL_MODE": "bogus"}, "POOL_MODE", "is not a pool mode"),
        ({"DEFAULT_POOL_SIZE": "many"}, "DEFAULT_POOL_SIZE", "is not a whole"),
        (
            {"POSTGRES_DATABASE_URL": "postgres://app:wrong-password@127.0.0.1:1/app"},
            "POSTGRES_DATABASE_URL",
            "could not log in",
        ),
        ({"POSTGRES_DATABASE_URL": "host=127.0.0.1%0A"}, URL, "(U+000A)"),
        ({"POSTGRES_DATABASE_URL": "host=127.0.0.1%0D"}, URL, "(U+000D)"),
        ({"POSTGRES_DATABASE_URL": "name=app%0A%5Bpgbouncer%5D"}, URL, "(U+000A)"),
        ({"POSTGRES_DATABASE_URL": "user=rend%0Aerer"}, URL, "(U+000A)"),
        ({"PGBOUNCER_ADMIN_URL": "user=stats%01"}, "PGBOUNCER_ADMIN_URL", "U+0001"),
        ({"SERVER_RESET_QUERY": "DISCARD ALL\x0b;"}, "SERVER_RESET_QUERY", "U+000B"),
        ({"LISTEN_ADDR": "127.0.0.\x851"}, "LISTEN_ADDR", "(U+0085)"),
        ({"MAX_CLIENT_CONN": "4294967297"}, "MAX_CLIENT_CONN", "from 1 to"),
        ({"LISTEN_PORT": "70000"}, "LISTEN_PORT", "not a port number"),
        ({"LISTEN_PORT": "\u0666\u0664\u0663\u0662"}, "LISTEN_PORT", "not a port"),
        ({"QUERY_TIMEOUT": "99999999999999999999"}, "QUERY_TIMEOUT", "not a number"),
    ],
    ids=[
        "bad-pool-mode",
        "bad-size",
        "server-unreachable",
        "encoded-newline-in-host",
        "encoded-return-in-host",
        "encoded-section-in-name",
        "encoded-newline-in-user",
        "control-in-console-user",
        "vertical-tab-in-setting",
        "next-line-in-setting",
        "count-pgbouncer-wraps",
        "port-out-of-range",
        "port-arabic-indic",
        "seconds-pgbouncer-wraps",
    ],
)
def test_a_bad_start_keeps_the_last_good_files(
    renderer_url, stack, tmp_path, env, variable, problem
):
    good = {"POSTGRES_DATABASE_URL": renderer_url.url()}
    ini, userlist = pgbouncer_files_write(good, directory=tmp_path, version=(1, 18))
    before = (ini.read_bytes(), userlist.read_bytes())
    env = {name: _url_with(stack, value) for name, value in env.items()}
    with pytest.raises(ConfigError) as caught:
        pgbouncer_files_write({**good, **env}, directory=tmp_path, version=(1, 18))
    assert caught.value.variable == variable
    assert problem in caught.value.problem
    assert (ini.read_bytes(), userlist.read_bytes()) == before
    assert "renderer-pw" not in str(caught.value)
    assert "wrong-password" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pgbouncer.ini",
        "userlist.txt",
    ]


def _url_with(stack, value):
    """`part=VALUE`: the renderer's URL with one part replaced, raw (encoded)."""
    part, _, raw = value.partition("=")
    if part not in ("host", "name", "user"):
        return value
    parts = {"host": "127.0.0.1", "name": "app", "user": "renderer"}
    parts[part] = raw
    port = stack.settings.postgres_port
    return (
        f"postgres://{parts['user']}:renderer-pw@{parts['host']}:{port}/{parts['name']}"
    )


def test_a_failed_write_leaves_every_old_file(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "gone" / "b.txt"
    first.write_text("old")
    with pytest.raises(FileNotFoundError):
        private_files_write({first: "new", second: "new"})
    assert first.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_wrong_password_is_reported_without_it(renderer_url, tmp_path):
    url = renderer_url.with_(password="wrong-password").url()
    with pytest.raises(ConfigError) as caught:
        pgbouncer_files_write(
            {"POSTGRES_DATABASE_URL": url}, directory=tmp_path, version=(1, 18)
        )
    message = str(caught.value)
    assert message.startswith("POSTGRES_DATABASE_URL: could not log in")
    assert "password authentication failed" in message
    assert "wrong-password" not in message
    assert "postgres://renderer:***@127.0.0.1" in message


def test_a_second_render_keeps_the_verifier_while_the_password_stays(
    renderer_url, superuser_conn, tmp_path
):
    superuser_conn.execute("CREATE ROLE rerender LOGIN PASSWORD 'other-pw'")
    env = {"POSTGRES_DATABASE_URL": renderer_url.url()}
    _, userlist = pgbouncer_files_write(env, directory=tmp_path, version=(1, 18))
    first = userlist.read_text()
    pgbouncer_files_write(env, directory=tmp_path, version=(1, 18))
    assert userlist.read_text() == first
    other = renderer_url.with_(user="rerender", password="other-pw").url()
    pgbouncer_files_write(
        {"POSTGRES_DATABASE_URL": other}, directory=tmp_path, version=(1, 18)
    )
    assert userlist.read_text() != first
