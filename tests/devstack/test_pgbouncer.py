"""devstack's PgBouncer restart: online (-R) where it has a Unix socket, so that a
client's connection and its transaction in flight live through it; with
so_reuseport otherwise."""

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.ephemeral import ephemeral_pgbouncer, ephemeral_stack
from devstack.pgbouncer import SOCKET_PATH_MAX, PgBouncer, PgBouncerSetup
from devstack.stack import Stack

pytestmark = pytest.mark.servers

TAKEOVER = "old process killed, resuming work"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with ephemeral_stack("test-pgb-restart-", seed_posts=0) as stack:
        yield stack


def pid(bouncer: PgBouncer) -> int:
    assert bouncer.child is not None
    assert bouncer.child.pid is not None
    return bouncer.child.pid


def test_the_socket_goes_in_its_own_folder_when_the_path_fits(tmp_path):
    short = PgBouncerSetup(workdir=tmp_path, port=6432)
    assert short.env()["UNIX_SOCKET_DIR"] == str(tmp_path)
    deep = tmp_path / ("d" * (SOCKET_PATH_MAX - len(str(tmp_path))))
    assert PgBouncerSetup(workdir=deep, port=6432).env()["UNIX_SOCKET_DIR"] == ""


def test_a_transaction_in_flight_lives_through_an_online_restart(stack):
    """The same client connection, mid-transaction, commits after the restart, on
    the same PostgreSQL backend: PgBouncer handed both sockets over."""
    bouncer = stack.pgbouncer
    before = pid(bouncer)
    with psycopg.connect(stack.pooled_url.url()) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        conn.execute("CREATE TEMP TABLE t (n int) ON COMMIT DROP")
        conn.execute("INSERT INTO t VALUES (1)")
        bouncer.restart()
        assert conn.execute("SELECT pg_backend_pid()").fetchone() == backend
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        conn.commit()
    assert pid(bouncer) != before
    assert TAKEOVER in bouncer.log.read_text()


@pytest.mark.parametrize(
    ("prefix", "version"),
    [
        ("test-pgb-" + "x" * SOCKET_PATH_MAX, (1, 18)),  # too long: no socket
        ("test-pgb-", (1, 23)),  # -R deprecated: SIGTERM's rolling restart
    ],
    ids=["socket-path-too-long", "pgbouncer-1.23"],
)
def test_otherwise_the_restart_shares_the_port(stack, prefix, version):
    """Without online restart the new process listens beside the old one
    (so_reuseport), and the old one goes."""
    with ephemeral_pgbouncer(stack, prefix, variables={"SO_REUSEPORT": "1"}) as bouncer:
        bouncer.version = version
        bouncer.write_files()
        assert "unix_socket_dir = \n" in bouncer.ini.read_text()
        assert not bouncer.restarts_online()
        before = pid(bouncer)
        old = bouncer.child
        bouncer.restart()
        assert pid(bouncer) != before
        assert old is not None
        assert old.exited() == 0
        url = stack.direct_url.with_(port=bouncer.config.port).url()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert TAKEOVER not in Path(bouncer.log).read_text()
