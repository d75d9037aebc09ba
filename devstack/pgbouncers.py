"""Several PgBouncer processes on one port (so_reuseport), as one server.

PgBouncer runs on one core. N processes share its port: each listens with
SO_REUSEPORT and the kernel spreads new connections over them. One render
writes the shared files (pgbouncer.ini, userlist.txt: one SCRAM verifier per
role, see docs/architecture.md); each process has a folder of its own,
<workdir>/<i>, with a pgbouncer.ini that includes the shared one and adds what
two processes cannot share: the Unix socket (a path is one process's) and an
address of its own, 127.0.1.<i> on the same port, where its console is reached
(the shared port lands on a random process). The whole of 127.0.0.0/8 is
loopback on Linux.

A restart is rolling, one process at a time, while the others keep the port
open: on 1.18 an online takeover (-R) through the process's own socket; where -R
is gone (1.23+), SIGINT (PAUSE, then exit once its transactions are done) and a
new process. With one process, devstack.pgbouncer's restart is kept.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from .errors import StackError
from .pgbouncer import START_SECONDS, STOP_SECONDS, PgBouncer, PgBouncerSetup
from .process import Child

__all__ = [
    "PROCESSES_MAX",
    "PROCESSES_VARIABLE",
    "PgBouncerProcess",
    "PgBouncers",
    "process_address",
]

PROCESSES_VARIABLE = "DEVSTACK_PGBOUNCER_PROCESSES"
# Each process's own address is 127.0.1.<i>; more processes than cores only
# share the cores (this many is far past any machine's need).
PROCESSES_MAX = 64


def process_address(index: int) -> str:
    """The address of process `index` (1-based) alone, beside the shared one."""
    return f"127.0.1.{index}"


def _overlay(shared_ini: Path, *, addresses: str, socket_dir: str) -> str:
    # The shared file ends in its [pgbouncer] section: the keys below continue it
    # and win. A second [pgbouncer] header would reset the section's other keys
    # to their defaults (PgBouncer 1.18's parser).
    return (
        "; Rendered by devstack: the shared file, then what is this process's own.\n"
        f"%include {shared_ini}\n"
        f"listen_addr = {addresses}\n"
        f"unix_socket_dir = {socket_dir}\n"
    )


class PgBouncerProcess(PgBouncer):
    """Process `index` of a set: the set's files, its own folder, socket, address."""

    def __init__(self, config: PgBouncerSetup, *, index: int, shared_ini: Path):
        super().__init__(config)
        self.index = index
        self.shared_ini = shared_ini
        self.address = process_address(index)

    def write_files(self, *, socket: bool | None = None) -> Path:
        """This process's own pgbouncer.ini (its socket always: `socket` is the
        shared file's business)."""
        cfg = self.config
        cfg.workdir.mkdir(mode=0o700, exist_ok=True)
        text = _overlay(
            self.shared_ini,
            addresses=f"{cfg.host},{self.address}",
            socket_dir=cfg.socket_dir(),
        )
        self.ini.write_text(text)
        self.ini.chmod(0o600)
        cfg.account.own(cfg.workdir, self.ini)
        return self.ini

    def _child(self, *options: str) -> Child:
        child = super()._child(*options)
        # Ready when its own address accepts: the shared port answers as soon as
        # any other process of the set does.
        child.host = self.address
        child.name = f"PgBouncer {self.index}"
        return child

    def start(self) -> None:
        self.ini = self.write_files()
        self.log.touch()
        self.config.account.own(self.log)
        self.child = self._child()
        self.child.start(timeout=START_SECONDS)

    def _setting(self, key: str) -> str:
        own = super()._setting(key)
        if own or f"\n{key} =" in self.ini.read_text():
            return own
        text = self.shared_ini.read_text() if self.shared_ini.exists() else ""
        found = re.search(rf"^{key}[ \t]*=[ \t]*(.*?)[ \t]*$", text, re.MULTILINE)
        return found.group(1) if found else ""

    def restart(self) -> None:
        """Online (-R) through its own socket where PgBouncer has it (before
        1.23): the new process takes over the old one's sockets, no client sees
        it. Otherwise SIGINT (PAUSE, then exit once its transactions are done),
        then a new process; the set's others hold the port meanwhile. A client
        the kernel hands to the old one while it shuts down is closed with it."""
        old = self.child
        if old is not None and old.exited() is None and self.restarts_online():
            super().restart()
            return
        if old is not None:
            old.stop(timeout=STOP_SECONDS)
        self.child = self._child()
        self.child.start(timeout=START_SECONDS)


class PgBouncers:
    """`count` PgBouncer processes on `config`'s port; with 1, devstack.pgbouncer's
    PgBouncer as it was (the attributes below are then its own)."""

    def __init__(self, config: PgBouncerSetup, *, count: int = 1) -> None:
        if not 1 <= count <= PROCESSES_MAX:
            raise StackError(
                f"{PROCESSES_VARIABLE}={count} is not a count of PgBouncer processes "
                f"from 1 to {PROCESSES_MAX}; set it to one (1: a single process)."
            )
        if count > 1 and not ipaddress.ip_address(config.host).is_loopback:
            raise StackError(
                f"{PROCESSES_VARIABLE}={count} needs PgBouncer on a loopback "
                f"address (each process's console is 127.0.1.<i>), not "
                f"{config.host}; set {PROCESSES_VARIABLE}=1."
            )
        self.config = config
        # The shared files' renderer; with one process, the process itself.
        self.shared = PgBouncer(config)
        self.processes: list[PgBouncer] = (
            [self.shared]
            if count == 1
            else [
                PgBouncerProcess(
                    PgBouncerSetup(
                        workdir=config.workdir / str(i),
                        port=config.port,
                        host=config.host,
                        account=config.account,
                    ),
                    index=i,
                    shared_ini=self.shared.ini,
                )
                for i in range(1, count + 1)
            ]
        )
        self.version = self.shared.version

    @property
    def count(self) -> int:
        return len(self.processes)

    @property
    def ini(self) -> Path:
        return self.shared.ini

    @property
    def log(self) -> Path:
        """The first process's log (each has its own: `logs`)."""
        return self.processes[0].log

    @property
    def logs(self) -> list[Path]:
        return [p.log for p in self.processes]

    @property
    def child(self) -> Child | None:
        """The first process (all of them: `children`)."""
        return self.processes[0].child

    @property
    def children(self) -> list[Child | None]:
        return [p.child for p in self.processes]

    def addresses(self) -> list[str]:
        """Where each process alone is reached: the shared host with one process."""
        if self.count == 1:
            return [self.config.host]
        return [process_address(i) for i in range(1, self.count + 1)]

    def write_files(self) -> Path:
        if self.count == 1:
            return self.shared.write_files()
        ini = self.shared.write_files(socket=False)
        for process in self.processes:
            process.write_files()
        return ini

    def start(self) -> None:
        if self.count == 1:
            self.shared.start()
            return
        self.shared.port_check()
        self.write_files()
        try:
            for process in self.processes:
                process.start()
        except BaseException:
            self.stop()
            raise

    def restart(self) -> None:
        """With one process, PgBouncer.restart(); otherwise each in turn."""
        for process in self.processes:
            process.restart()

    def reload(self) -> None:
        """Re-render the files and have every process re-read them (SIGHUP)."""
        self.write_files()
        for process in self.processes:
            process.reload_signal()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
