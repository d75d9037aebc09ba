"""`make run`'s program from the outside: it starts everything, serves the site
through PgBouncer, stops every process on SIGTERM, and keeps its data."""

import os
import pwd
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from devstack.process import port_free, port_pick
from devstack.stack import PROJECT_DIR
from tests.fixtures.stack import scratch_dir

pytestmark = pytest.mark.servers


def reachable_by_nobody(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    nobody = pwd.getpwnam("nobody").pw_uid
    return all(
        p.stat().st_mode & 0o001 or p.stat().st_uid == nobody
        for p in [path, *path.parents]
    )


class Run:
    def __init__(self, root: Path, ports: dict[str, int]):
        self.root, self.ports = root, ports
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_URL", "DIRECT_"))
        }
        env |= {"DEVSTACK_DIR": str(root), "DEVSTACK_SEED_POSTS": "7"}
        env |= {k: str(v) for k, v in ports.items()}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=PROJECT_DIR,
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


@pytest.fixture
def ports():
    """Free ports for a run; skips where the run's web server could not start."""
    if not reachable_by_nobody(PROJECT_DIR):
        pytest.skip(
            f"as root the web server runs as nobody, who cannot reach {PROJECT_DIR}"
        )
    return {
        "DEVSTACK_POSTGRES_PORT": port_pick(),
        "DEVSTACK_PGBOUNCER_PORT": port_pick(),
        "WEB_PORT": port_pick(),
    }


def test_run_serves_stops_and_keeps_data(ports):
    root = scratch_dir("test-run-")
    first = Run(root, ports)
    try:
        output = first.wait_ready()
        assert "password " in output  # the admin's, shown on the first run
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['WEB_PORT']}/") as r:
            assert b"Demo post 7" in r.read()
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
    for port in ports.values():
        assert port_free("127.0.0.1", port), f"port {port} still in use after stop"
    leftover = subprocess.run(
        ["pgrep", "-f", str(root)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftover == [], "processes of the run are still alive"

    second = Run(root, ports)
    try:
        output = second.wait_ready()
        assert "password shown on the first run" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['WEB_PORT']}/") as r:
            body = r.read()
        assert body.count(b"Demo post") == 7  # kept, not seeded again
    finally:
        assert second.stop() == 0


def test_run_stops_everything_when_a_child_dies(ports):
    root = scratch_dir("test-run-crash-")
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
        ("DEVSTACK_SEED_POSTS", "lots", "DEVSTACK_SEED_POSTS: 'lots' is not a count"),
    ],
)
def test_run_rejects_bad_variables(variable, value, message):
    result = subprocess.run(
        [sys.executable, "-m", "devstack"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            variable: value,
            "DEVSTACK_DIR": str(scratch_dir("test-run-bad-")),
        },
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_run_reports_a_port_in_use():
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
                "DEVSTACK_DIR": str(scratch_dir("test-run-busy-")),
            },
            check=False,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port}: the port is in use" in result.stderr
    assert "WEB_PORT" in result.stderr
