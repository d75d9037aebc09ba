"""What a run writes in its folder about its processes, so that the next run can
tell whether it is still running and find any server it left behind.

The first line against orphans is the kernel: each server gets its stop signal
when make run dies (process.Child). This is the second, for whatever that missed
(servers started by an older devstack, a parent that died before asking): run.json
names the run and each server by pid, start time and command line, which together
name one process, never a later one that got the same pid. The next run stops
those still alive and says so, instead of stopping at "port in use".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import StackError
from .process import Child
from .procfs import pid_alive, pid_cmdline, pid_start_ticks

__all__ = [
    "ProcessRecord",
    "leftovers_stop",
    "run_alive",
    "run_claim",
    "run_release",
    "servers_record",
]

RECORD_NAME = "run.json"
PID_NAME = "run.pid"  # for people: kill -HUP "$(cat .devstack/run.pid)"
# A leftover gets its own stop signal, then this long, then SIGKILL.
LEFTOVER_STOP_SECONDS = 30.0


@dataclass(frozen=True)
class ProcessRecord:
    """One process: which, since when (clock ticks since boot), as what command."""

    name: str
    pid: int
    start_ticks: int
    argv: tuple[str, ...]
    stop_signal: str = "SIGTERM"

    @classmethod
    def of(cls, name: str, pid: int, stop_signal: str = "SIGTERM") -> ProcessRecord:
        return cls(
            name, pid, pid_start_ticks(pid) or 0, tuple(pid_cmdline(pid)), stop_signal
        )

    def alive(self) -> bool:
        """Whether this very process still runs (not a new one with its pid)."""
        return (
            pid_start_ticks(self.pid) == self.start_ticks
            and tuple(pid_cmdline(self.pid)) == self.argv
        )


def _record(data: dict[str, Any]) -> ProcessRecord:
    return ProcessRecord(
        str(data["name"]),
        int(data["pid"]),
        int(data["start_ticks"]),
        tuple(str(part) for part in data["argv"]),
        str(data["stop_signal"]),
    )


def _read(root: Path) -> tuple[ProcessRecord | None, list[ProcessRecord]]:
    """The recorded run and its servers; (None, []) when there is no record (or
    one this version cannot read, which is then treated as none)."""
    try:
        data = json.loads((root / RECORD_NAME).read_text())
        return _record(data["monitor"]), [_record(s) for s in data["servers"]]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None, []


def _write(root: Path, monitor: ProcessRecord, servers: list[ProcessRecord]) -> None:
    # Here, not at the top: the restart asker reads records inside a PAUSE, and
    # loading Django there would lengthen the pause by a second.
    from django_pgbouncer.render import private_file_write

    data = {"monitor": asdict(monitor), "servers": [asdict(s) for s in servers]}
    private_file_write(root / RECORD_NAME, json.dumps(data, indent=2) + "\n")


def _write_private(path: Path, text: str) -> None:
    """`text` into `path`, 0600 like everything in the run's folder."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def run_alive(root: Path) -> int | None:
    """The pid of the make run that uses `root`, if it is running."""
    monitor, _ = _read(root)
    return monitor.pid if monitor is not None and monitor.alive() else None


def run_claim(root: Path) -> list[str]:
    """Make `root` this run's: refuse if another run is alive there; stop the
    servers a dead one left running, and return what was done, for the user."""
    monitor, servers = _read(root)
    if monitor is not None and monitor.pid != os.getpid() and monitor.alive():
        raise StackError(
            f"make run is already running with its data in {root} (pid "
            f"{monitor.pid}). Use that one, or stop it first (Ctrl-C in its "
            f"terminal, or kill {monitor.pid}), or give this one a folder of its own "
            f"(DEVSTACK_DIR) and ports of its own."
        )
    done = leftovers_stop(servers, run_pid=monitor.pid if monitor else None)
    me = ProcessRecord.of("make run", os.getpid())
    _write(root, me, [])
    _write_private(root / PID_NAME, f"{os.getpid()}\n")
    return done


def servers_record(root: Path, children: Iterable[Child | None]) -> None:
    """Record the running servers (after each start and restart)."""
    monitor, _ = _read(root)
    me = monitor or ProcessRecord.of("make run", os.getpid())
    _write(
        root,
        me,
        [
            ProcessRecord.of(child.name, child.pid, child.stop_signal.name)
            for child in children
            if child is not None and child.pid is not None and child.exited() is None
        ],
    )


def run_release(root: Path) -> None:
    """The run is over and its servers stopped: nothing left to find."""
    for name in (RECORD_NAME, PID_NAME):
        (root / name).unlink(missing_ok=True)


def _leftover_stop(record: ProcessRecord) -> str:
    sig = signal.Signals[record.stop_signal]
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, sig)
    deadline = time.monotonic() + LEFTOVER_STOP_SECONDS
    while pid_alive(record.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    how = f"{sig.name}"
    if pid_alive(record.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGKILL)  # a session leader: its children
        how += f", then SIGKILL after {LEFTOVER_STOP_SECONDS:.0f} s"
    return f"{record.name} (pid {record.pid}: {' '.join(record.argv)}): {how}"


def leftovers_stop(servers: list[ProcessRecord], *, run_pid: int | None) -> list[str]:
    """Stop the recorded servers that still run, the last started first; say how
    each was stopped."""
    alive = [record for record in reversed(servers) if record.alive()]
    if not alive:
        return []
    return [
        f"An earlier make run (pid {run_pid}) is gone but left {len(alive)} of its "
        "servers running; stopped them:",
        *(_leftover_stop(record) for record in alive),
    ]
