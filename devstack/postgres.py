"""A private PostgreSQL cluster: initdb once, start, create the site's role, stop."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from django_pgbouncer import PostgresURL
from django_pgbouncer.render import private_file_write

from .errors import ServersMissing, StackError
from .process import Account, Child, port_require_free, port_wait_free, run_checked

SUPERUSER = "postgres"
# After a crash the killed postmaster's children may hold the port and the shared
# memory a moment longer ("pre-existing shared memory block is still in use"): a
# restart tries again for this long.
RESTART_SECONDS = 20.0


def _major_of_bin(path: str) -> int:
    """15 for /usr/lib/postgresql/15/bin/postgres; 0 for a folder not a number."""
    name = Path(path).parts[-3]
    return int(name) if name.isascii() and name.isdigit() else 0


def postgres_bindir() -> Path:
    """PG_BINDIR, else the newest /usr/lib/postgresql/*/bin, else `initdb` on PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_major_of_bin)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise ServersMissing(
        "PostgreSQL is not installed (no initdb found). Install it with "
        "`apt-get install postgresql`, or set PG_BINDIR to its bin folder."
    )


@dataclass(frozen=True)
class PostgresConfig:
    """Where the cluster lives and how it listens."""

    datadir: Path
    port: int
    superuser_password: str
    host: str = "127.0.0.1"
    bindir: Path | None = None
    account: Account = field(default_factory=Account)
    # A test cluster trades durability for speed; a dev cluster keeps its data.
    durable: bool = True
    # The variable that moves it to another port (named when the port is taken).
    port_variable: str = "DEVSTACK_POSTGRES_PORT"

    def superuser_url(self, dbname: str = "postgres") -> PostgresURL:
        return PostgresURL(
            SUPERUSER, self.superuser_password, self.host, self.port, dbname
        )


def _starting(error: psycopg.OperationalError) -> bool:
    """Whether the server refused a login only because it is not ready yet (still
    starting, or recovering after a crash)."""
    return any(
        words in str(error)
        for words in ("starting up", "not yet accepting", "in recovery mode")
    )


class Postgres:
    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self.bindir = config.bindir or postgres_bindir()
        self.log = config.datadir.parent / "postgres.log"
        self.child: Child | None = None

    def _initdb(self) -> None:
        cfg = self.config
        cfg.datadir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cfg.account.own(cfg.datadir)
        pwfile = cfg.datadir.parent / ".pwfile"
        private_file_write(pwfile, cfg.superuser_password + "\n")
        cfg.account.own(pwfile)
        try:
            run_checked(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(cfg.datadir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ]
                + ([] if cfg.durable else ["--no-sync"]),
                what="initdb",
                account=cfg.account,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> None:
        cfg = self.config
        port_require_free(
            cfg.host, cfg.port, what="PostgreSQL", variable=cfg.port_variable
        )
        if not (cfg.datadir / "PG_VERSION").exists():
            self._initdb()
        settings = {
            "listen_addresses": cfg.host,
            "port": str(cfg.port),
            "unix_socket_directories": "",  # TCP only: nothing in a shared /tmp
            "max_connections": "100",
            "logging_collector": "off",
        }
        if not cfg.durable:
            settings |= {
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
            }
        argv = [str(self.bindir / "postgres"), "-D", str(cfg.datadir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self.log.touch(mode=0o600)
        cfg.account.own(self.log)
        # SIGINT is PostgreSQL's "fast" shutdown: roll back, disconnect, stop cleanly.
        self.child = Child(
            "PostgreSQL",
            argv,
            log=self.log,
            host=cfg.host,
            port=cfg.port,
            account=cfg.account,
            stop_signal=signal.SIGINT,
        )
        self.child.start(timeout=60)
        self._wait_accepting()

    def _wait_accepting(self) -> None:
        # The port opens before recovery ends; a login proves the cluster is ready.
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(
                    self.config.superuser_url().url(), connect_timeout=2
                ):
                    return
            except psycopg.OperationalError as error:
                if not _starting(error) or time.monotonic() > deadline:
                    raise StackError(
                        f"PostgreSQL on port {self.config.port} refuses the "
                        f"superuser: {error}. If {self.config.datadir} was made by "
                        f"another run with other passwords, delete it to start over."
                    ) from None
                time.sleep(0.2)

    def role_and_database_ensure(self, url: PostgresURL, *, createdb: bool) -> None:
        """Create (or re-password) `url.user` and its database `url.name`, which
        it owns (it runs the migrations). Its attributes are set each time, so a
        role an older devstack made gets no more than this one gives.

        `createdb`: Django's test runner (`manage.py test`) creates, copies and
        drops test databases as the role; a site that only serves never does."""
        with psycopg.connect(self.config.superuser_url().url(), autocommit=True) as c:
            exists = c.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", [url.user]
            ).fetchone()
            verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
            c.execute(
                sql.SQL(
                    "{} ROLE {} LOGIN {} NOSUPERUSER NOCREATEROLE NOREPLICATION "
                    "NOBYPASSRLS PASSWORD {}"
                ).format(
                    verb,
                    sql.Identifier(url.user),
                    sql.SQL("CREATEDB" if createdb else "NOCREATEDB"),
                    sql.Literal(url.password),
                )
            )
            if not c.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [url.name]
            ).fetchone():
                c.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(url.name), sql.Identifier(url.user)
                    )
                )

    def replication_role_ensure(self, user: str, password: str) -> None:
        """Create (or re-password) `user`, a login that may stream WAL and nothing
        else: what a replica's pg_basebackup and walreceiver log in as. initdb's
        pg_hba.conf already lets it in over loopback (`host replication all
        127.0.0.1/32`)."""
        with psycopg.connect(self.config.superuser_url().url(), autocommit=True) as c:
            exists = c.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", [user]
            ).fetchone()
            c.execute(
                sql.SQL(
                    "{} ROLE {} LOGIN REPLICATION NOSUPERUSER NOCREATEDB "
                    "NOCREATEROLE NOBYPASSRLS PASSWORD {}"
                ).format(
                    sql.SQL("ALTER" if exists else "CREATE"),
                    sql.Identifier(user),
                    sql.Literal(password),
                )
            )

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=60)

    def restart(self) -> None:
        """Stop it (fast shutdown: sessions end, nothing is lost) if it runs, and
        start it again; after a crash, as soon as what is left of it lets go."""
        self.stop()
        cfg = self.config
        deadline = time.monotonic() + RESTART_SECONDS
        port_wait_free(cfg.host, cfg.port, timeout=RESTART_SECONDS)
        while True:
            try:
                self.start()
                return
            except StackError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)
