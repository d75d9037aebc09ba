"""Asking a running `make run` to restart one of its servers.

The servers are make run's children, so make run itself restarts them: it knows
the restart was asked for (its monitor treats an unasked exit as a crash), and the
new server is its child again, watched and stopped with it. The request is a file
in the run's folder (control/, 0700: whoever may write there may restart its
servers); make run looks for one every POLL_SECONDS and writes the reply beside it.

`python -m devstack restart postgres` runs the restart inside
`manage.py pgbouncer_maintenance`: PAUSE, the restart (this module's
`--no-pause` request), RESUME, so that no query fails. `restart pgbouncer` asks
directly: PgBouncer.restart() keeps the port open throughout.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import StackError
from .folders import PROJECT_DIR
from .records import run_alive

__all__ = [
    "SERVERS",
    "Request",
    "control_dir_ensure",
    "reply_write",
    "requests_take",
    "restart_ask",
    "restart_paused",
    "stack_env_read",
]

SERVERS = ("postgres", "pgbouncer")
CONTROL_NAME = "control"
POLL_SECONDS = 0.1
# A restart takes seconds; a reply this late means make run is stuck.
REPLY_SECONDS = 90.0


@dataclass(frozen=True)
class Request:
    """A restart asked of make run: which server, and where the reply goes."""

    id: str
    server: str

    def __str__(self) -> str:
        return f"restart {self.server}"


def control_dir_ensure(root: Path) -> Path:
    """The run's control folder, empty of an earlier run's requests."""
    folder = root / CONTROL_NAME
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    for stale in folder.iterdir():
        stale.unlink(missing_ok=True)
    return folder


def requests_take(root: Path) -> list[Request]:
    """The requests waiting, oldest first; each is taken (its file removed)."""
    folder = root / CONTROL_NAME
    found = sorted(folder.glob("*.request"), key=lambda p: p.stat().st_mtime_ns)
    taken = []
    for path in found:
        server = path.read_text().strip()
        path.unlink(missing_ok=True)
        taken.append(Request(path.stem, server))
    return taken


def reply_write(root: Path, request: Request, *, ok: bool, message: str) -> None:
    path = root / CONTROL_NAME / f"{request.id}.reply"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ok": ok, "message": message}))
    os.replace(tmp, path)  # whole or not at all: the asker may read it at once


def _not_running(root: Path) -> StackError:
    return StackError(
        f"make run is not running with its data in {root}. Start it (make run), or "
        "set DEVSTACK_DIR to the folder of the run to ask."
    )


def restart_ask(root: Path, server: str, *, timeout: float = REPLY_SECONDS) -> str:
    """Ask the make run of `root` to restart `server`, wait for it to be done, and
    return what make run said; StackError if it failed or did not answer."""
    if run_alive(root) is None:
        raise _not_running(root)
    request = Request(secrets.token_hex(8), server)
    folder = root / CONTROL_NAME
    tmp = folder / f"{request.id}.tmp"
    tmp.write_text(server)
    os.replace(tmp, folder / f"{request.id}.request")
    reply = folder / f"{request.id}.reply"
    deadline = time.monotonic() + timeout
    while not reply.exists():
        if run_alive(root) is None:
            raise StackError(f"make run stopped before it did the {request}.")
        if time.monotonic() > deadline:
            (folder / f"{request.id}.request").unlink(missing_ok=True)
            raise StackError(
                f"make run did not {request} within {timeout:.0f} s; see its output."
            )
        time.sleep(POLL_SECONDS)
    answer = json.loads(reply.read_text())
    reply.unlink(missing_ok=True)
    if not answer["ok"]:
        raise StackError(str(answer["message"]))
    return str(answer["message"])


def stack_env_read(root: Path) -> dict[str, str]:
    """The URLs make run wrote for the operator (stack.env)."""
    path = root / "stack.env"
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise StackError(
            f"{path} is missing: make run writes it once the site is up. Start make "
            "run, or wait until it says where the site is."
        ) from None
    pairs = (line.split("=", 1) for line in lines if "=" in line)
    # Values are written shell-quoted where they need it (devstack.run).
    return {key: " ".join(shlex.split(value)) for key, value in pairs}


def restart_paused(root: Path, server: str, environ: Mapping[str, str]) -> int:
    """`manage.py pgbouncer_maintenance -- python -m devstack restart SERVER
    --no-pause`, with the run's console user that may PAUSE; its exit status."""
    from .stack import MAINTENANCE_VARIABLE  # Django: for this outer command only

    if run_alive(root) is None:
        raise _not_running(root)
    stack_env = stack_env_read(root)
    if MAINTENANCE_VARIABLE not in stack_env:
        raise StackError(
            f"{root / 'stack.env'} has no {MAINTENANCE_VARIABLE}: it was written by "
            "an older make run. Stop make run and start it again."
        )
    inner = [sys.executable, "-m", "devstack", "restart", server, "--no-pause"]
    manage = [sys.executable, str(PROJECT_DIR / "manage.py")]
    return subprocess.run(
        [*manage, "pgbouncer_maintenance", "--", *inner],
        cwd=PROJECT_DIR,
        env={**environ, **stack_env, "DEVSTACK_DIR": str(root)},
        check=False,
    ).returncode
