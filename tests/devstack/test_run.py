"""`make run`'s program from the outside: it starts everything, serves the site
through PgBouncer, stops every process on SIGTERM, and keeps its data; as root,
from a checkout inside a private (0700) folder too."""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from devstack.process import port_free, port_pick
from devstack.stack import PROJECT_DIR
from tests.fixtures.acl import acl_user_ids

pytestmark = pytest.mark.servers


class Run:
    """`python -m devstack` from `cwd`, its data in `root` (None: cwd/.devstack)."""

    def __init__(
        self, root: Path | None, ports: dict[str, int], *, cwd: Path = PROJECT_DIR
    ):
        self.root, self.ports = root, ports
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_URL", "DIRECT_", "DEVSTACK_DIR"))
            and k != "PYTHONPATH"  # the checkout in cwd is the one that runs
        }
        env |= {"DEVSTACK_SEED_POSTS": "7"}
        env |= {"DEVSTACK_DIR": str(root)} if root is not None else {}
        env |= {k: str(v) for k, v in ports.items()}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def wait_ready(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if "Ctrl-C stops everything" in line:
                return "".join(self.lines)
        self.proc.kill()
        pytest.fail("make run did not come up:\n" + "".join(self.lines))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        assert self.proc.stdout is not None
        self.lines += self.proc.stdout.readlines()
        self.proc.stdout.close()
        return code


def assert_all_stopped(ports: dict[str, int], folder: Path) -> None:
    for port in ports.values():
        assert port_free("127.0.0.1", port), f"port {port} still in use after stop"
    leftover = subprocess.run(
        ["pgrep", "-f", str(folder)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftover == [], "processes of the run are still alive"


def home_page(ports: dict[str, int]) -> bytes:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{ports['WEB_PORT']}/", timeout=30
    ) as response:
        return bytes(response.read())


@pytest.fixture
def ports():
    """Free ports for a run."""
    return {
        "DEVSTACK_POSTGRES_PORT": port_pick(),
        "DEVSTACK_PGBOUNCER_PORT": port_pick(),
        "WEB_PORT": port_pick(),
    }


def test_run_serves_stops_and_keeps_data(ports, scratch):
    root = scratch("test-run-")
    first = Run(root, ports)
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
        }
        assert f":{ports['DEVSTACK_PGBOUNCER_PORT']}/app" in stack_env["DATABASE_URL"]
        assert oct((root / "stack.env").stat().st_mode & 0o777) == "0o600"
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


def test_run_stops_everything_when_a_child_dies(ports, scratch):
    root = scratch("test-run-crash-")
    run = Run(root, ports)
    run.wait_ready()
    pgbouncer = subprocess.run(
        ["pgrep", "-f", f"pgbouncer {root}/pgbouncer/pgbouncer.ini"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(pgbouncer) == 1
    os.kill(int(pgbouncer[0]), signal.SIGKILL)
    assert run.proc.wait(60) == 1
    assert run.stop() == 1
    output = "".join(run.lines)
    assert "PgBouncer stopped unexpectedly" in output
    assert "Traceback" not in output
    for port in ports.values():
        assert port_free("127.0.0.1", port), f"port {port} still in use"


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
            undo = [line for line in run.lines if f"setfacl -x u:{account} " in line]
            assert len(undo) == 1, output
            assert str(private) in undo[0].split("setfacl -x", 1)[1]
            assert pwd.getpwnam(account).pw_uid in acl_user_ids(private)
    else:
        assert "setfacl" not in output
