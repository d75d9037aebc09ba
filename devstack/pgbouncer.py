"""A private PgBouncer, configured by django_pgbouncer's renderer."""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django_pgbouncer.errors import ConfigError
from django_pgbouncer.render import (
    pgbouncer_binary,
    pgbouncer_files_write,
    pgbouncer_version_detect,
)

from .errors import ServersMissing, StackError
from .process import Account, Child, port_require_free, port_wait_free

# How long the new PgBouncer of a restart may take to listen, and the old one to
# finish its transactions and go (1.18's SIGINT: PAUSE, then exit).
START_SECONDS = 20.0
STOP_SECONDS = 15.0
# Online restart (-R) is deprecated from 1.20 and gone in later releases
# (pgbouncer#894, #1581); from 1.23, SIGTERM waits for the old process's clients
# to leave, which makes so_reuseport the supported rolling restart (#902).
ONLINE_RESTART_BEFORE = (1, 23)
# sockaddr_un's sun_path holds 107 bytes and a NUL; PgBouncer's socket is
# <unix_socket_dir>/.s.PGSQL.<port>.
SOCKET_PATH_MAX = 107


@dataclass(frozen=True)
class PgBouncerSetup:
    """Where PgBouncer keeps its files, its port, and its variables (POOL_MODE...)."""

    workdir: Path
    port: int
    variables: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    account: Account = field(default_factory=Account)

    def socket_dir(self) -> str:
        """Where PgBouncer's Unix socket goes: its own folder, which online
        restart (-R) needs; "" (no socket) where the path would be too long."""
        path = f"{self.workdir}/.s.PGSQL.{self.port}"
        return str(self.workdir) if len(path.encode()) <= SOCKET_PATH_MAX else ""

    def env(self, *, socket: bool = True) -> dict[str, str]:
        """The variables the renderer reads; our address and socket always win.

        Without `socket`, none: two processes sharing the port (so_reuseport)
        cannot share a socket path, and the second one would exit."""
        return {
            **self.variables,
            "LISTEN_ADDR": self.host,
            "LISTEN_PORT": str(self.port),
            "UNIX_SOCKET_DIR": self.socket_dir() if socket else "",
        }


class PgBouncer:
    def __init__(self, config: PgBouncerSetup) -> None:
        self.config = config
        binary = pgbouncer_binary()
        if binary is None:
            raise ServersMissing(
                "PgBouncer is not installed. Install it with `apt-get install "
                "pgbouncer` (as root), then run again."
            )
        self.binary = binary
        self.version = pgbouncer_version_detect(binary)
        self.log = config.workdir / "pgbouncer.log"
        self.ini = config.workdir / "pgbouncer.ini"
        self.child: Child | None = None

    def write_files(self, *, socket: bool | None = None) -> Path:
        """Render pgbouncer.ini and userlist.txt. `socket`: whether the files name
        a Unix socket (default: where online restart wants one)."""
        cfg = self.config
        if socket is None:
            socket = self.version < ONLINE_RESTART_BEFORE
        try:
            ini, userlist = pgbouncer_files_write(
                cfg.env(socket=socket),
                directory=cfg.workdir,
                version=self.version,
            )
        except ConfigError as error:
            raise StackError(str(error)) from None
        cfg.account.own(cfg.workdir, ini, userlist)
        return ini

    def port_check(self) -> None:
        cfg = self.config
        port_require_free(
            cfg.host, cfg.port, what="PgBouncer", variable="DEVSTACK_PGBOUNCER_PORT"
        )

    def start(self) -> None:
        self.port_check()
        cfg = self.config
        self.ini = self.write_files()
        self.log.touch()
        cfg.account.own(self.log)
        self.child = self._child()
        self.child.start(timeout=START_SECONDS)

    def _child(self, *options: str) -> Child:
        cfg = self.config
        # SIGINT is 1.18's graceful shutdown (PAUSE, then exit); SIGTERM drops
        # transactions in flight.
        return Child(
            "PgBouncer",
            [self.binary, *options, str(self.ini)],
            log=self.log,
            host=cfg.host,
            port=cfg.port,
            account=cfg.account,
            stop_signal=signal.SIGINT,
        )

    def _setting(self, key: str) -> str:
        """A key's value in the running files ("" if absent)."""
        text = self.ini.read_text() if self.ini.exists() else ""
        found = re.search(rf"^{key}[ \t]*=[ \t]*(.*?)[ \t]*$", text, re.MULTILINE)
        return found.group(1) if found else ""

    def restarts_online(self) -> bool:
        """Whether -R can take over the running files' sockets: a Unix socket to
        reach the old process by, a version that has -R, and no TLS, whose
        connections -R cannot hand over (they are dropped)."""
        return (
            self.version < ONLINE_RESTART_BEFORE
            and self._setting("unix_socket_dir") != ""
            and self._setting("client_tls_sslmode") in ("", "disable")
            and self._setting("server_tls_sslmode") in ("", "disable")
        )

    def shares_port(self) -> bool:
        """Whether the running files say so_reuseport = 1: a second PgBouncer may
        then listen on the port beside this one."""
        return self._setting("so_reuseport") == "1"

    def restart(self) -> None:
        """A new PgBouncer process, with the files of the running one.

        Online (-R) where it can (restarts_online()): the new process
        logs in to the old one's console through it (as `pgbouncer`, which the
        same Unix account may without a password), SUSPENDs it, takes over its
        listening socket and every client and server connection with their
        state, transactions in flight included, and shuts it down. No client
        sees a disconnect: `python -m bench.faults`'s PgBouncer row, 0 failed
        under 16 clients, and tests/devstack/test_pgbouncer.py's transaction
        that commits across it on the same backend.

        Otherwise, with so_reuseport, the new one listens before the old one
        gets SIGINT, so the port never refuses a client: the kernel hands new
        connections to either, and the old one, paused, finishes its
        transactions in flight and exits. 1.18 then closes its clients (1.23's
        SIGTERM would wait for them): a kept connection is reconnected by the
        site's stale-connection check before its next request, and a request
        caught between two queries by the close is the site's to retry
        (BackendLossMiddleware). Measured with 8 keep-alive GET clients for 8 s
        (400 to 1,300 requests), 5 restarts each: 0 to 8 failed without that
        retry (stop, then start: 5 to 26), none with it.

        Without either, or with no PgBouncer running (a crash), it is stop, then
        start."""
        old = self.child
        if old is not None and old.exited() is None and self.restarts_online():
            new = self._child("-R")
            new.start(timeout=START_SECONDS, own_socket=True)
            self.child = new
            old.wait_exit(timeout=STOP_SECONDS)  # the new one sent it SHUTDOWN
            return
        if old is None or old.exited() is not None or not self.shares_port():
            if old is not None:
                old.stop(timeout=STOP_SECONDS)
            port_wait_free(self.config.host, self.config.port, timeout=STOP_SECONDS)
            self.child = self._child()
            self.child.start(timeout=START_SECONDS)
            return
        new = self._child()
        new.start(timeout=START_SECONDS, own_socket=True)
        self.child = new
        old.stop(timeout=STOP_SECONDS)

    def reload(self) -> None:
        """Re-render the files and have PgBouncer re-read them (SIGHUP)."""
        self.write_files()
        self.reload_signal()

    def reload_signal(self) -> None:
        """Have the running process re-read its files (SIGHUP)."""
        if self.child is not None:
            self.child.signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=15)
