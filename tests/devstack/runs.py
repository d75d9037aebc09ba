"""`make run` from the outside, for devstack's tests: a `python -m devstack`
process on free ports, its output read as it comes, and what it left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest

from devstack.process import port_free, port_pick
from devstack.procfs import pid_alive
from devstack.stack import PROJECT_DIR

READY_LINE = "Ctrl-C stops everything"


def ports_pick() -> dict[str, int]:
    """Free ports for a run."""
    return {
        "DEVSTACK_POSTGRES_PORT": port_pick(),
        "DEVSTACK_PGBOUNCER_PORT": port_pick(),
        "WEB_PORT": port_pick(),
    }


def run_environ(
    root: Path | None, ports: dict[str, int], **extra: str
) -> dict[str, str]:
    """The environment of a run (and of the commands that talk to it)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "DIRECT_", "DEVSTACK_DIR"))
        and k not in ("PYTHONPATH", "PGBOUNCER_MAINTENANCE_URL", "DEVSTACK_PDEATHSIG")
    }
    env |= {"DEVSTACK_SEED_POSTS": "7"}
    env |= {"DEVSTACK_DIR": str(root)} if root is not None else {}
    env |= {k: str(v) for k, v in ports.items()}
    return env | extra


class Run:
    """`python -m devstack` from `cwd`, its data in `root` (None: cwd/.devstack);
    `argv_prefix` puts a parent of our choosing between us and it."""

    def __init__(
        self,
        root: Path | None,
        ports: dict[str, int],
        *,
        cwd: Path = PROJECT_DIR,
        argv_prefix: Sequence[str] = (),
        **extra: str,
    ) -> None:
        self.root, self.ports = root, ports
        self.env = run_environ(root, ports, **extra)
        self.proc = subprocess.Popen(
            [*argv_prefix, sys.executable, "-m", "devstack"],
            cwd=cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 60) -> str:
        """Wait until `text` has appeared `count` times in the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.output.count(text) >= count:
                return self.output
            if not self._reader.is_alive():
                break
            time.sleep(0.05)
        pytest.fail(f"make run never said {text!r} ({count}x):\n{self.output}")

    def wait_ready(self, timeout: float = 120) -> str:
        try:
            return self.wait_for(READY_LINE, timeout=timeout)
        except BaseException:
            self.proc.kill()
            raise

    def wait_exit(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()


def server_pids(folder: Path) -> list[int]:
    """Live processes whose command line names `folder` (PostgreSQL, PgBouncer)."""
    found = subprocess.run(
        ["pgrep", "-f", str(folder)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [int(pid) for pid in found if pid_alive(int(pid))]


def pgbouncer_pids(root: Path) -> list[int]:
    return server_pids(root / "pgbouncer" / "pgbouncer.ini")


def postmaster_pid(root: Path) -> int:
    return int((root / "postgres" / "data" / "postmaster.pid").read_text().split()[0])


def assert_all_stopped(ports: dict[str, int], folder: Path, *, within: float = 0):
    """Every port free and no process of `folder` alive (waiting up to `within`
    seconds for them to go)."""
    deadline = time.monotonic() + within
    while True:
        busy = [p for p in ports.values() if not port_free("127.0.0.1", p)]
        left = server_pids(folder)
        if not busy and not left:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert busy == [], f"ports {busy} still in use"
    assert left == [], f"processes of the run still alive: {left}"


def home_page(ports: dict[str, int]) -> bytes:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{ports['WEB_PORT']}/", timeout=30
    ) as response:
        return bytes(response.read())
