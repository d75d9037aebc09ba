"""A private PgBouncer, configured by django_pgbouncer's renderer."""

from __future__ import annotations

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
from .process import Account, Child, port_require_free


@dataclass(frozen=True)
class PgBouncerSetup:
    """Where PgBouncer keeps its files, its port, and its variables (POOL_MODE...)."""

    workdir: Path
    port: int
    variables: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    account: Account = field(default_factory=Account)

    def env(self) -> dict[str, str]:
        """The variables the renderer reads; our address always wins."""
        return {
            **self.variables,
            "LISTEN_ADDR": self.host,
            "LISTEN_PORT": str(self.port),
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
        self.child: Child | None = None

    def write_files(self) -> Path:
        cfg = self.config
        try:
            ini, userlist = pgbouncer_files_write(
                cfg.env(), directory=cfg.workdir, version=self.version
            )
        except ConfigError as error:
            raise StackError(str(error)) from None
        cfg.account.own(cfg.workdir, ini, userlist)
        return ini

    def start(self) -> None:
        cfg = self.config
        port_require_free(
            cfg.host, cfg.port, what="PgBouncer", variable="DEVSTACK_PGBOUNCER_PORT"
        )
        ini = self.write_files()
        self.log.touch()
        cfg.account.own(self.log)
        # SIGINT is 1.18's graceful shutdown (PAUSE, then exit); SIGTERM drops
        # transactions in flight.
        self.child = Child(
            "PgBouncer",
            [self.binary, str(ini)],
            log=self.log,
            host=cfg.host,
            port=cfg.port,
            account=cfg.account,
            stop_signal=signal.SIGINT,
        )
        self.child.start(timeout=20)

    def reload(self) -> None:
        """Re-render the files and have PgBouncer re-read them (SIGHUP)."""
        self.write_files()
        if self.child is not None:
            self.child.signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=15)
