"""No orphans: make run's servers stop with it however it dies (the kernel's
parent-death signal), it stops cleanly when its own parent dies (SIGHUP), and a
run that finds servers an earlier one left running (started without that signal:
DEVSTACK_PDEATHSIG=0) stops them and says so, instead of "port in use"."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.procfs import pid_alive
from devstack.stack import PROJECT_DIR
from tests.devstack.runs import (
    Run,
    assert_all_stopped,
    home_page,
    ports_pick,
    run_environ,
)

pytestmark = pytest.mark.servers

# A parent between us and make run, as make is: it runs make run and waits.
PARENT = [
    sys.executable,
    "-c",
    "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))",
]
# Fast shutdowns (PostgreSQL's, PgBouncer's, gunicorn's) of an idle stack.
GONE_WITHIN = 15.0


def recorded(root: Path) -> dict[str, int]:
    """The run's pid and its servers', by name, from its record."""
    data = json.loads((root / "run.json").read_text())
    pids = {server["name"]: server["pid"] for server in data["servers"]}
    return {"make run": data["monitor"]["pid"], **pids}


def assert_gone(pids: dict[str, int], within: float = GONE_WITHIN) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(map(pid_alive, pids.values())):
        time.sleep(0.1)
    assert {name: pid for name, pid in pids.items() if pid_alive(pid)} == {}


def test_make_run_stops_cleanly_when_its_parent_is_killed(scratch):
    """make killed with SIGKILL: make run gets SIGHUP from the kernel, and stops
    as on Ctrl-C or a closed terminal."""
    root, ports = scratch("test-orphan-parent-"), ports_pick()
    run = Run(root, ports, argv_prefix=PARENT)
    run.wait_ready()
    pids = recorded(root)
    run.proc.kill()  # the parent; make run is its child
    run.wait_for("SIGHUP: stopping the web server, PgBouncer, PostgreSQL")
    assert run.wait_exit() == -signal.SIGKILL
    assert_gone(pids, within=60)  # make run's own, orderly stop
    assert_all_stopped(ports, root)
    assert not (root / "run.json").exists()  # a clean stop leaves no record
    assert "Traceback" not in run.output


def third_run(root: Path, ports: dict[str, int]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack"],
        cwd=PROJECT_DIR,
        env=run_environ(root, ports),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_run_stops_what_an_orphaned_run_left_and_leaves_no_orphan(scratch):
    """The harm first: without the parent-death signal, a killed run's servers
    live on. The next run stops them, says so, refuses to share its folder with
    a third; killed in turn with SIGKILL (as the OOM killer does), it leaves
    nothing behind, its servers having had the signal."""
    root, ports = scratch("test-orphan-left-"), ports_pick()
    orphaned = Run(root, ports, DEVSTACK_PDEATHSIG="0")
    orphaned.wait_ready()
    left = recorded(root)
    orphaned.proc.kill()
    orphaned.wait_exit()
    time.sleep(1)
    servers = {name: pid for name, pid in left.items() if name != "make run"}
    assert set(servers) == {"PostgreSQL", "PgBouncer", "gunicorn"}
    assert all(map(pid_alive, servers.values())), "no orphans: nothing was shown"

    second = Run(root, ports)
    try:
        output = second.wait_ready()
        assert (
            f"An earlier make run (pid {left['make run']}) is gone but left 3 of its "
            "servers running; stopped them:"
        ) in output
        for name, pid in servers.items():
            assert f"{name} (pid {pid}: " in output
        assert_gone(servers, within=0)
        assert b"Demo post 7" in home_page(ports)
        refused = third_run(root, ports)
        assert refused.returncode == 1
        assert (
            f"make run is already running with its data in {root} (pid "
            f"{second.proc.pid})"
        ) in refused.stderr
        assert b"Demo post 7" in home_page(ports)
        pids = recorded(root)
    finally:
        second.proc.kill()
        second.wait_exit()
    assert_gone(pids)
    assert_all_stopped(ports, root, within=GONE_WITHIN)
