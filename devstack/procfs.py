"""What Linux says about a process: alive, since when, run as what, listening
where; and the signal it gets when its parent dies.

Read from /proc, which holds the truth for processes of ours and of an earlier run
alike (as root, or as the account that started them)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
from pathlib import Path

__all__ = [
    "parent_death_signal_set",
    "pid_alive",
    "pid_cmdline",
    "pid_listens",
    "pid_start_ticks",
]

PROC = Path("/proc")
_PR_SET_PDEATHSIG = 1
# Resolved once, here: the function runs between fork and exec (a preexec_fn),
# where loading a library could wait on a lock another thread held at the fork.
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_prctl = _libc.prctl


def parent_death_signal_set(sig: signal.Signals) -> None:
    """Have the kernel send `sig` to this process when the thread that started it
    exits (prctl PR_SET_PDEATHSIG). The kernel clears it on a change of uid, so it
    is set after one: Popen's preexec_fn runs after its user= and group= switch."""
    if _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return text[text.rindex(")") + 2 :].split()


def pid_start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot): with the pid, it names one
    process, never a later one that got the same number. None if it is gone or a
    zombie (dead, not yet reaped)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])  # field 22 of proc(5), counted after the name


def pid_alive(pid: int) -> bool:
    return pid_start_ticks(pid) is not None


def pid_cmdline(pid: int) -> list[str]:
    """`pid`'s command line as it started it; [] if it is gone."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        for fd in (PROC / str(pid) / "fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def pid_listens(pid: int, port: int) -> bool:
    """Whether `pid` itself holds a TCP socket listening on `port` (IPv4 or v6).

    Connecting cannot tell: with SO_REUSEPORT another process may answer there."""
    inodes = _socket_inodes(pid)
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                listening = state == "0A" and int(local.rsplit(":", 1)[1], 16) == port
                if listening and inode in inodes:
                    return True
    return False
