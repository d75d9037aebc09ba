"""Child processes: who they run as, how they start, wait, and stop.

In the style of pytest-postgresql's executor: the command line is built by the
caller, readiness is a TCP connect, output goes to one log file per process, and
`stop()` is safe to call twice.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import StackError
from .procfs import parent_death_signal_set, pid_listens

# PostgreSQL and PgBouncer refuse to run as root; when started by root they run as
# this account (Debian's postgresql package creates it).
DEFAULT_SERVER_ACCOUNT = "postgres"


@dataclass(frozen=True)
class Account:
    """The unprivileged account a server runs as; None fields mean 'as we are'.

    devstack.reach lets it through the folders above what it must reach."""

    name: str | None = None
    uid: int | None = None
    gid: int | None = None
    home: str | None = None

    @classmethod
    def for_servers(cls, name: str | None = None) -> Account:
        """Ourselves, unless we are root: then `name` (default: postgres)."""
        if os.geteuid() != 0:
            return cls()
        name = name or os.environ.get("DEVSTACK_USER") or DEFAULT_SERVER_ACCOUNT
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise StackError(
                f"running as root, the servers need an unprivileged account, and "
                f"{name!r} does not exist. Create it (useradd --system {name}) or set "
                f"DEVSTACK_USER to an existing one."
            ) from None
        if entry.pw_uid == 0:
            raise StackError(f"DEVSTACK_USER={name!r} is root; name another account.")
        return cls(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    def own(self, *paths: Path) -> None:
        """Hand `paths` to this account (no-op when we are not root)."""
        if self.uid is None or self.gid is None:
            return
        for path in paths:
            os.chown(path, self.uid, self.gid)

    def popen_kwargs(self) -> dict[str, object]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_pick(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now (for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_require_free(host: str, port: int, *, what: str, variable: str) -> None:
    if not port_free(host, port):
        raise StackError(
            f"{what} cannot listen on {host}:{port}: the port is in use. Stop the "
            f"process using it (ss -ltnp 'sport = :{port}'), or set {variable} to "
            f"another port."
        )


def port_wait_free(host: str, port: int, *, timeout: float) -> bool:
    """Wait (up to `timeout`) for a port that a stopped server held to be free."""
    deadline = time.monotonic() + timeout
    while not port_free(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _log_open(path: Path) -> BinaryIO:
    """A server's log, for appending, 0600 (also where an older run left it
    looser): logs quote queries, and with them what the site stores."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


def _parent_death_stop(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn that has the kernel send `sig` (the child's own graceful stop)
    when the thread starting it dies, however it dies (SIGKILL, the OOM killer):
    the servers of a dead `make run` stop instead of holding their ports.

    The signal follows the starting *thread*: a server started by a thread that
    ends before it would be stopped then, so only the main thread asks for it.
    DEVSTACK_PDEATHSIG=0 turns it off: the tests make orphans with it, to prove
    that the next run finds them (devstack.records)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if os.environ.get("DEVSTACK_PDEATHSIG", "").strip() == "0":
        return None
    return lambda: parent_death_signal_set(sig)


class Child:
    """One server process: started, waited for on its port, stopped on demand.

    It stops with its parent: see _parent_death_stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        host: str,
        port: int,
        account: Account | None = None,
        env: Mapping[str, str] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.argv, self.log = name, list(argv), log
        self.host, self.port, self.account = host, port, account or Account()
        self.env, self.stop_signal, self.cwd = env, stop_signal, cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0, *, own_socket: bool = False) -> None:
        """Start it and wait until its port accepts; with `own_socket`, until the
        process itself listens there (another may share the port: SO_REUSEPORT)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with _log_open(self.log) as out:
            try:
                self.process = self._popen(out)
            except OSError as error:
                raise StackError(
                    f"{self.name} could not be started ({self.argv[0]}): {error}"
                    + (
                        f". The account {self.account.name!r} must be able to run it."
                        if self.account.name
                        else ""
                    )
                ) from None
        self.wait_ready(timeout, own_socket=own_socket)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def _popen(self, out: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            self.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(self.env) if self.env is not None else None,
            cwd=self.cwd,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
            preexec_fn=_parent_death_stop(self.stop_signal),
            **self.account.popen_kwargs(),
        )

    def _accepts(self, own_socket: bool) -> bool:
        if own_socket:
            return self.pid is not None and pid_listens(self.pid, self.port)
        with contextlib.suppress(OSError):
            socket.create_connection((self.host, self.port), timeout=0.5).close()
            return True
        return False

    def wait_ready(self, timeout: float, *, own_socket: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise StackError(
                    f"{self.name} exited with code {self.process.returncode} while "
                    f"starting. The end of its log ({self.log}):\n{log_tail(self.log)}"
                )
            if self._accepts(own_socket):
                return
            time.sleep(0.05)
        self.stop()
        raise StackError(
            f"{self.name} did not accept connections on {self.host}:{self.port} "
            f"within {timeout:.0f}s. The end of its log ({self.log}):\n"
            f"{log_tail(self.log)}"
        )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def wait_exit(self, timeout: float) -> None:
        """Wait for it to exit of itself; stop it if it has not within `timeout`."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is not None:
            # Dead (a crash): what it started may live on in its process group, as
            # gunicorn's workers do until they notice, holding the port.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, self.stop_signal)
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def run_checked(
    argv: Sequence[str],
    *,
    what: str,
    account: Account | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a short command; on failure raise with its output, never a traceback."""
    result = subprocess.run(  # type: ignore[call-overload]
        list(argv),
        capture_output=True,
        text=True,
        check=False,
        env=dict(env) if env is not None else None,
        **(account or Account()).popen_kwargs(),
    )
    if result.returncode != 0:
        raise StackError(
            f"{what} failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr).strip()}"
        )
    return str(result.stdout)
