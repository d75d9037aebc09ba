"""deploy/pgbouncer.sh, the pgbouncer service's entry point, run with sh on the
local PgBouncer 1.18 and files rendered as the pgbouncer-config job renders them:
PGBOUNCER_PROCESSES=2 processes share the port, each with its own socket folder
(where the web container reaches its console), `restart` replaces them one at a
time while the port keeps serving, and the container's SIGTERM stops them all."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from devstack.ephemeral import scratch_dir
from devstack.pgbouncer import PgBouncer, PgBouncerSetup
from devstack.process import port_pick
from devstack.stack import STATS_CONSOLE_USER, Stack
from django_pgbouncer.observe import console_show

pytestmark = pytest.mark.servers

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "pgbouncer.sh"


@dataclass
class Service:
    proc: subprocess.Popen[str]
    run_dir: Path
    url: str  # the site's role through the shared port
    consoles: list[str]  # each process's console, through its socket folder
    env: dict[str, str]


@functools.cache
def script_readable() -> Path:
    """The script where the servers' account can read it: a checkout under /root
    (0700) is closed to it, as it is not to the image's."""
    folder = scratch_dir("test-pgbouncer-script-")
    atexit.register(shutil.rmtree, folder, True)
    copy = folder / SCRIPT.name
    shutil.copy(SCRIPT, copy)
    copy.chmod(0o644)
    return copy


def sh(
    env: dict[str, str], stack: Stack, *args: str, log: Path | None = None
) -> subprocess.Popen[str]:
    """The script as the servers' account; its output piped, or into `log` (a
    service's, which runs on and would fill a pipe)."""
    out = log.open("w") if log else None
    try:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            ["sh", str(script_readable()), *args],
            env=env,
            stdout=out or subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **stack.account.popen_kwargs(),
        )
    finally:
        if out is not None:
            out.close()  # the child has its own copy


def wait_for(check, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def service_files(
    stack: Stack, folder: Path, port: int, **variables: str
) -> dict[str, str]:
    """The files the pgbouncer-config job renders, in `folder` (the stack's
    userlist, so its verifier stays), owned by the servers' account; the
    service's environment for two processes."""
    shutil.copy(stack.pgbouncer.config.workdir / "userlist.txt", folder)
    files = PgBouncer(
        PgBouncerSetup(
            workdir=folder,
            port=port,
            account=stack.account,
            variables={
                "POSTGRES_DATABASE_URL": stack.direct_url.url(),
                "SO_REUSEPORT": "1",
                **variables,
            },
        )
    )
    files.write_files(socket=False)
    run_dir = folder / "run"
    run_dir.mkdir()
    stack.account.own(folder, run_dir, *folder.iterdir())
    return {
        "PATH": os.environ["PATH"],
        "PGBOUNCER_INI": str(files.ini),
        "PGBOUNCER_RUN_DIR": str(run_dir),
        "PGBOUNCER_PROCESSES": "2",
    }


@pytest.fixture(scope="module")
def service(stack: Stack) -> Iterator[Service]:
    folder = scratch_dir("test-pgbouncer-sh-")
    try:
        port = port_pick()
        env = service_files(
            stack,
            folder,
            port,
            PGBOUNCER_ADMIN_URL=stack.admin_console_url.url(),
            STATS_USERS=STATS_CONSOLE_USER,
        )
        run_dir = Path(env["PGBOUNCER_RUN_DIR"])
        proc = sh(env, stack, log=folder / "service.log")
        console = stack.admin_console_url
        # A socket folder as the host: percent-encoded, as libpq reads it.
        consoles = [
            f"postgres://{console.user}:{console.password}@"
            f"{quote(str(run_dir / str(i)), safe='')}:{port}/pgbouncer"
            for i in (1, 2)
        ]
        started = Service(
            proc, run_dir, stack.direct_url.with_(port=port).url(), consoles, env
        )
        try:
            for i in (1, 2):
                socket = run_dir / str(i) / f".s.PGSQL.{port}"
                wait_for(socket.exists, f"process {i}'s socket")
            yield started
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pids(service: Service) -> list[str]:
    return [
        (service.run_dir / str(i) / "pgbouncer.pid").read_text().strip() for i in (1, 2)
    ]


def test_each_process_has_its_own_socket_and_console(service):
    dirs = [
        {c.key: c.value for c in console_show(url, "CONFIG")}["unix_socket_dir"]
        for url in service.consoles
    ]
    assert dirs == [str(service.run_dir / "1"), str(service.run_dir / "2")]
    assert len(set(pids(service))) == 2


def test_restart_replaces_each_process_while_the_port_serves(service, stack):
    before = pids(service)
    stop, errors, done = threading.Event(), [], []

    def queries() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(service.url, connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                done.append(1)
            except psycopg.Error as error:
                errors.append(str(error))

    worker = threading.Thread(target=queries)
    worker.start()
    try:
        restart = sh(service.env, stack, "restart")
        out, _ = restart.communicate(timeout=90)
    finally:
        stop.set()
        worker.join(10)
    assert restart.returncode == 0, out
    assert "PgBouncer process 2 restarted" in out
    after = pids(service)
    assert set(after).isdisjoint(before)
    assert done
    # The port never refused: a client caught by a process's shutdown is closed.
    refused = [e for e in errors if "closed the connection unexpectedly" not in e]
    assert refused == []


def test_sigterm_stops_every_process(stack):
    """Last: the container stops (its own service, so the others keep theirs)."""
    folder = scratch_dir("test-pgbouncer-sh-stop-")
    try:
        env = service_files(stack, folder, port_pick())
        run_dir = Path(env["PGBOUNCER_RUN_DIR"])
        proc = sh(env, stack, log=folder / "service.log")
        pidfiles = [run_dir / str(i) / "pgbouncer.pid" for i in (1, 2)]
        wait_for(
            lambda: all(p.exists() and p.read_text().strip() for p in pidfiles),
            "both pid files",
        )
        started = [int(p.read_text()) for p in pidfiles]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        for pid in started:
            wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), f"{pid} gone")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(
    ("count", "problem"),
    [
        ("two", "PGBOUNCER_PROCESSES=two is not a count"),
        ("0", "PGBOUNCER_PROCESSES=0 is out of range"),
    ],
    ids=["not-a-number", "zero"],
)
def test_a_bad_count_names_the_variable(tmp_path, count, problem):
    result = subprocess.run(
        ["sh", str(SCRIPT)],
        env={"PATH": os.environ["PATH"], "PGBOUNCER_PROCESSES": count},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert problem in result.stderr
