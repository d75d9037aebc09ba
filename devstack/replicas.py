"""Streaming replicas of the stack's PostgreSQL: each a copy made by
`pg_basebackup -R` (which writes standby.signal and primary_conninfo), started as a
hot standby on its own port, and reached by the site through a PgBouncer database
of its own (`app_replica1`, ...: render/ini.py's POSTGRES_REPLICA_HOSTS).

`DEVSTACK_REPLICAS=N` asks `make run` for N of them (default 0: none, and nothing
else changes); `DEVSTACK_REPLICA_PORT` is the first one's port."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import psycopg
from psycopg import sql

from django_pgbouncer import PostgresURL
from django_pgbouncer.env import env_int, env_port

from .errors import StackError
from .folders import private_folder_ensure
from .postgres import Postgres, PostgresConfig
from .process import Account, run_checked
from .reach import reach_ensure

__all__ = [
    "REPLICATION_USER",
    "Replica",
    "replica_database_name",
    "replica_pgbouncer_variables",
    "replica_ports_from_env",
    "replica_site_env",
    "replicas_make",
    "replicas_start",
    "replicas_stop",
]

# The role the replicas stream WAL as: REPLICATION and nothing else.
REPLICATION_USER = "replicator"
REPLICA_PORT_DEFAULT = 55433
# How long a started replica may take to replay what the primary has when it
# starts (a fresh copy has it all; one restarted after a while streams the rest).
CATCH_UP_SECONDS = 30.0


def replica_ports_from_env(env: Mapping[str, str]) -> tuple[int, ...]:
    """DEVSTACK_REPLICAS ports, from DEVSTACK_REPLICA_PORT up (empty: none)."""
    count = env_int(env, "DEVSTACK_REPLICAS", 0, maximum=9)
    first = env_port(env, "DEVSTACK_REPLICA_PORT", REPLICA_PORT_DEFAULT)
    if first + count - 1 > 65535:
        raise StackError(
            f"DEVSTACK_REPLICA_PORT={first} leaves no room for {count} replicas "
            f"on consecutive ports; set it to {65536 - count} or lower."
        )
    return tuple(range(first, first + count))


def replica_database_name(database: str, number: int) -> str:
    """PgBouncer's name for replica `number` (from 1) of `database`: the same
    naming as the renderer's."""
    return f"{database}_replica{number}"


class Replica(Postgres):
    """A hot standby of `primary`: made by pg_basebackup on its first start,
    restarted from its own folder after."""

    def __init__(
        self,
        config: PostgresConfig,
        *,
        primary: PostgresConfig,
        replication_password: str,
        number: int,
    ) -> None:
        super().__init__(config)
        self.primary = primary
        self.replication_password = replication_password
        self.number = number

    @property
    def name(self) -> str:
        return f"replica{self.number}"

    def _initdb(self) -> None:
        """A copy of the running primary instead of a new cluster. -R writes
        standby.signal and primary_conninfo (with the password it logged in
        with); -X stream brings the WAL written during the copy along."""
        cfg, primary = self.config, self.primary
        cfg.datadir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cfg.account.own(cfg.datadir)
        conninfo = (
            f"host={primary.host} port={primary.port} user={REPLICATION_USER} "
            f"application_name={self.name}"
        )
        run_checked(
            [
                str(self.bindir / "pg_basebackup"),
                "-D",
                str(cfg.datadir),
                "-d",
                conninfo,
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
            ]
            + ([] if cfg.durable else ["--no-sync"]),
            what=f"pg_basebackup of {self.name}",
            account=cfg.account,
            # Not on the command line, where any user's `ps` would show it.
            env={
                "PATH": os.environ.get("PATH", ""),
                "PGPASSWORD": self.replication_password,
            },
        )

    def start(self) -> None:
        super().start()
        self.caught_up_wait()

    def replay_lsn(self) -> str:
        """What it has replayed (pg_last_wal_replay_lsn), as PostgreSQL writes it."""
        with psycopg.connect(self.config.superuser_url().url()) as conn:
            row = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
        return str(row[0]) if row else ""

    def caught_up_wait(self, timeout: float = CATCH_UP_SECONDS) -> None:
        """Until it has replayed everything the primary had committed when asked."""
        with psycopg.connect(self.primary.superuser_url().url()) as conn:
            # A commit that waits for its flush flushes all WAL before it, which
            # is what the replica can receive: an asynchronous commit, or a record
            # no commit followed, may sit unflushed for seconds. Only a transaction
            # that wrote WAL waits (an xid alone commits asynchronously): the
            # message is that WAL.
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = on")
                conn.execute("SELECT pg_logical_emit_message(true, 'devstack', '')")
            row = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        target = str(row[0]) if row else "0/0"
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.config.superuser_url().url(), autocommit=True) as c:
            while True:
                done = c.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
                ).fetchone()
                if done and done[0]:
                    return
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{self.name} on port {self.config.port} has not replayed "
                        f"the primary's WAL up to {target} within {timeout:.0f}s. "
                        f"Its log: {self.log}"
                    )
                time.sleep(0.05)

    def apply_delay_set(self, seconds: float) -> None:
        """Have it apply each transaction `seconds` after its commit on the primary
        (recovery_min_apply_delay): a deterministic lag, for tests and demos.
        ALTER SYSTEM is allowed on a standby (it writes no WAL)."""
        with psycopg.connect(
            self.config.superuser_url().url(), autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("ALTER SYSTEM SET recovery_min_apply_delay = {}").format(
                    sql.Literal(f"{round(seconds * 1000)}ms")
                )
            )
            conn.execute("SELECT pg_reload_conf()")


def replicas_make(
    root: Path,
    ports: tuple[int, ...],
    *,
    primary: PostgresConfig,
    replication_password: str,
    account: Account,
) -> list[Replica]:
    """A Replica per port, each in root/replicaN (its data and its log), folders
    owned by and open to the servers' account."""
    if not ports:
        return []
    root = private_folder_ensure(root)
    account.own(root)
    replicas = []
    for number, port in enumerate(ports, start=1):
        folder = private_folder_ensure(root / f"replica{number}")
        account.own(folder)
        replicas.append(
            Replica(
                replace(
                    primary,
                    datadir=folder / "data",
                    port=port,
                    port_variable="DEVSTACK_REPLICA_PORT",
                ),
                primary=primary,
                replication_password=replication_password,
                number=number,
            )
        )
    reach_ensure(account, [(root, "rwx")], what="the replicas")
    return replicas


def replicas_start(primary: Postgres, replicas: list[Replica], password: str) -> None:
    """The replication role on the running primary, then each replica, caught up."""
    if not replicas:
        return
    primary.replication_role_ensure(REPLICATION_USER, password)
    for replica in replicas:
        replica.start()


def replicas_stop(replicas: list[Replica]) -> None:
    """Each replica stopped, the last first; every one even if one fails."""
    errors: list[BaseException] = []
    for replica in reversed(replicas):
        try:
            replica.stop()
        except BaseException as error:  # the others still stop
            errors.append(error)
    if errors:
        raise errors[0]


def replica_pgbouncer_variables(replicas: list[Replica]) -> dict[str, str]:
    """PgBouncer's renderer variable for a database per replica (none: {})."""
    if not replicas:
        return {}
    hosts = [f"{r.config.host}:{r.config.port}" for r in replicas]
    return {"POSTGRES_REPLICA_HOSTS": ",".join(hosts)}


def replica_site_env(
    direct: PostgresURL, pooled_port: int, count: int
) -> dict[str, str]:
    """REPLICA_DATABASE_URLS for the site: each replica through PgBouncer at
    `pooled_port`, as `direct`'s role, in its own PgBouncer database (none: {})."""
    if not count:
        return {}
    urls = [
        direct.with_(port=pooled_port, name=replica_database_name(direct.name, n))
        for n in range(1, count + 1)
    ]
    return {"REPLICA_DATABASE_URLS": ",".join(url.url() for url in urls)}
