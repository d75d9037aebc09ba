"""`make run`'s program from the outside: it starts everything, serves the site
through PgBouncer, stops every process on SIGTERM, and keeps its data; as root,
from a checkout inside a private (0700) folder too. The web server holds the
console user that may only read; the one that may PAUSE is the operator's.

Restarts and crashes: test_restart.py; orphans: test_orphans.py."""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from devstack.procfs import pid_alive
from devstack.stack import PROJECT_DIR
from tests.devstack.runs import (
    Run,
    assert_all_stopped,
    home_page,
    ports_pick,
)
from tests.fixtures.acl import acl_user_ids

pytestmark = pytest.mark.servers


@pytest.fixture
def ports():
    """Free ports for a run."""
    return ports_pick()


def test_run_serves_stops_and_keeps_data(ports, scratch):
    root = scratch("test-run-")
    # A shell that sourced stack.env passes the maintenance URL on to make run.
    first = Run(root, ports, PGBOUNCER_MAINTENANCE_URL="postgres://o:p@h:1/pgbouncer")
    try:
        output = first.wait_ready()
        assert "password " in output  # the admin's, shown on the first run
        assert b"Demo post 7" in home_page(ports)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{ports['WEB_PORT']}/static/admin/css/base.css"
        ) as r:
            assert r.status == 200
        stack_env = dict(
            line.split("=", 1) for line in (root / "stack.env").read_text().split()
        )
        assert set(stack_env) == {
            "WEB_URL",
            "DATABASE_URL",
            "DIRECT_DATABASE_URL",
            "PGBOUNCER_ADMIN_URL",
            "PGBOUNCER_ADMIN_URLS",
            "PGBOUNCER_MAINTENANCE_URL",
            "DJANGO_DEBUG",
            "DJANGO_HTTPS",
            "DJANGO_SECRET_KEY",
            "DJANGO_ALLOWED_HOSTS",
        }
        assert f":{ports['DEVSTACK_PGBOUNCER_PORT']}/app" in stack_env["DATABASE_URL"]
        assert oct((root / "stack.env").stat().st_mode & 0o777) == "0o600"
        assert_web_never_holds_the_maintenance_user(root, stack_env)
    finally:
        # Two signals in a row: the second must not cut the shutdown short.
        first.proc.send_signal(signal.SIGTERM)
        assert first.stop() == 0
    assert_all_stopped(ports, root)

    second = Run(root, ports)
    try:
        output = second.wait_ready()
        assert "password shown on the first run" in output
        assert home_page(ports).count(b"Demo post") == 7  # kept, not seeded again
    finally:
        assert second.stop() == 0


def web_pids(root: Path) -> list[int]:
    """gunicorn's master (from the run's record) and its workers."""
    record = json.loads((root / "run.json").read_text())
    (master,) = [s["pid"] for s in record["servers"] if s["name"] == "gunicorn"]
    workers = subprocess.run(
        ["pgrep", "-P", str(master)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [master, *map(int, workers)]


def assert_web_never_holds_the_maintenance_user(
    root: Path, stack_env: dict[str, str]
) -> None:
    """No gunicorn process has PGBOUNCER_MAINTENANCE_URL or its password in its
    environment, though make run's own environment had one (the caller's shell
    may have sourced stack.env); the site's console URL is the stats user's."""
    secrets = json.loads((root / "secrets.json").read_text())
    password = secrets["maintenance_console_password"]
    assert password in stack_env["PGBOUNCER_MAINTENANCE_URL"]
    assert "//pgbouncer_admin:" in stack_env["PGBOUNCER_MAINTENANCE_URL"]
    assert "//pgbouncer_stats:" in stack_env["PGBOUNCER_ADMIN_URL"]
    pids = web_pids(root)
    assert len(pids) >= 2, "gunicorn's master and at least one worker"
    for pid in pids:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"PGBOUNCER_ADMIN_URL=" in environ  # the read is a real one
        assert b"PGBOUNCER_MAINTENANCE_URL" not in environ
        assert password.encode() not in environ


def test_run_stops_everything_when_gunicorn_dies(ports, scratch):
    """PostgreSQL and PgBouncer are restarted when they crash (test_restart.py);
    gunicorn's master restarts its own workers, so its death is a broken start
    that a restart would repeat: the run stops, naming the log."""
    root = scratch("test-run-crash-")
    run = Run(root, ports)
    run.wait_ready()
    master = web_pids(root)[0]
    os.kill(master, signal.SIGKILL)
    assert run.wait_exit(60) == 1
    assert "gunicorn stopped unexpectedly (killed by SIGKILL)" in run.output
    assert f"see its log: {root / 'web.log'}. Stopping the rest." in run.output
    assert "Traceback" not in run.output
    assert not pid_alive(master)
    assert_all_stopped(ports, root, within=10)  # its workers, told to go


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WEB_PORT", "eighty", "WEB_PORT: 'eighty' is not a port number"),
        ("DEVSTACK_POSTGRES_PORT", "70000", "DEVSTACK_POSTGRES_PORT: '70000'"),
        ("DEVSTACK_SEED_POSTS", "lots", "DEVSTACK_SEED_POSTS: 'lots' is not a whole"),
    ],
)
def test_run_rejects_bad_variables(variable, value, message, scratch):
    result = subprocess.run(
        [sys.executable, "-m", "devstack"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            variable: value,
            "DEVSTACK_DIR": str(scratch("test-run-bad-")),
        },
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_run_reports_a_port_in_use(scratch):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "devstack"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "WEB_PORT": str(port),
                "DEVSTACK_DIR": str(scratch("test-run-busy-")),
            },
            check=False,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port}: the port is in use" in result.stderr
    assert "WEB_PORT" in result.stderr


def tracked_copy(destination: Path) -> None:
    """The project's tracked files, as they are in the working tree, copied to
    `destination`: a checkout of its own, without .venv or .devstack."""
    listed = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "ls-files", "-z"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT_DIR / name
        if source.is_file():  # not one deleted in the working tree
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def test_run_from_a_checkout_in_a_private_folder(ports, scratch):
    """A checkout inside a 0700 folder, as one under /root is. As root, the servers'
    account and the web server's are let through that folder by search-only ACLs,
    and the run says how to undo them; as anyone else it is the usual run. This
    venv's python runs the copy (cwd comes first on sys.path with -m)."""
    private = scratch("test-run-private-", mode=0o700)
    checkout = private / "house"
    tracked_copy(checkout)
    run = Run(None, ports, cwd=checkout)
    try:
        output = run.wait_ready()
        assert f"data in {checkout / '.devstack'}" in output
        assert b"Demo post 7" in home_page(ports)
    finally:
        assert run.stop() == 0
    assert_all_stopped(ports, private)
    assert oct(private.stat().st_mode & 0o707) == "0o700"  # no chmod, only ACLs
    if os.geteuid() == 0:
        for account in (os.environ.get("DEVSTACK_USER") or "postgres", "nobody"):
            granted = [line for line in run.lines if f"Granted {account!r} " in line]
            assert len(granted) == 1, output
            # The undo: the one entry (-x), or the whole ACL where there was none;
            # for the private folder, and for any folder above this venv (a
            # checkout under /root: the web server needs the venv there too).
            undo = granted[0].split("; undo: ", 1)[1].strip().split("; ")
            assert any(
                c in (f"setfacl -x u:{account} {private}", f"setfacl -b {private}")
                for c in undo
            ), output
            assert all(
                c.startswith((f"setfacl -x u:{account} /", "setfacl -b /"))
                for c in undo
            ), output
            assert pwd.getpwnam(account).pw_uid in acl_user_ids(private)
    else:
        assert "setfacl" not in output
