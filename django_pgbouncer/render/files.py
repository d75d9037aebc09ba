"""Writing PgBouncer's files (and any other secret file: `private_file_write`), and
asking the installed PgBouncer its version."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from ..databases import PostgresURL
from ..errors import ConfigError, redact
from .ini import Version, ini_render, pgbouncer_config_from_env, version_parse
from .scram import scram_verifier, scram_verifier_matches
from .userlist import userlist_parse, userlist_render

__all__ = [
    "pgbouncer_binary",
    "pgbouncer_files_write",
    "pgbouncer_version_detect",
    "private_file_write",
    "server_verifier_set",
]

INI_NAME = "pgbouncer.ini"
USERLIST_NAME = "userlist.txt"


def pgbouncer_binary() -> str | None:
    """The `pgbouncer` executable: on PATH, or where Debian puts it (/usr/sbin)."""
    return shutil.which("pgbouncer") or shutil.which(
        "pgbouncer", path="/usr/sbin:/usr/local/sbin"
    )


def pgbouncer_version_detect(binary: str | None = None) -> Version:
    """The version of the installed PgBouncer, from `pgbouncer --version`."""
    binary = binary or pgbouncer_binary()
    if binary is None:
        raise ConfigError(
            "PGBOUNCER_VERSION",
            "is not set and no pgbouncer binary is installed to ask",
            "install PgBouncer (apt-get install pgbouncer) or set "
            "PGBOUNCER_VERSION to the version that will read the files",
        )
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    )
    return version_parse(out.stdout or out.stderr, variable="pgbouncer --version")


def private_file_write(path: Path, text: str) -> None:
    """Write `text` to `path`, mode 0600 from its first byte.

    Written beside the target and renamed over it, so a reader never sees half a
    file, and a file that was there keeps its old text until the new one is whole.
    """
    # mkstemp creates the file 0600.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def server_verifier_set(upstream: PostgresURL, verifier: str) -> None:
    """Store `verifier` as the upstream role's password, logging in as that role.

    A role may change its own password; the password stays the same, only the salt
    is new. This is what lets PgBouncer hold a verifier instead of a password.
    """
    try:
        with psycopg.connect(
            upstream.url(), autocommit=True, connect_timeout=10
        ) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE CURRENT_USER PASSWORD {}").format(
                    sql.Literal(verifier)
                )
            )
    except psycopg.Error as error:
        reason = redact(str(error), [upstream.password])
        raise ConfigError(
            "POSTGRES_DATABASE_URL",
            f"could not log in to PostgreSQL at {upstream.redacted()} to store the "
            f"SCRAM verifier PgBouncer will use ({reason.strip()})",
            "check that the server is up and that the user name and password in "
            "POSTGRES_DATABASE_URL are right",
        ) from None


def pgbouncer_files_write(
    env: Mapping[str, str], *, directory: Path, version: Version
) -> tuple[Path, Path]:
    """Render both files from `env` into `directory` (mode 0600); return their paths.

    Everything is validated, and the server's verifier set, before anything is
    written, so a bad variable leaves the files of the last good start in place.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ini, userlist = directory / INI_NAME, directory / USERLIST_NAME
    config = pgbouncer_config_from_env(
        env, version=version, auth_file=str(userlist.resolve())
    )
    # A verifier that still matches its password is kept: a PgBouncer that has not
    # re-read its files yet holds it, and a new salt would break its server logins.
    previous = userlist_parse(userlist.read_text()) if userlist.exists() else {}
    verifiers = {
        name: previous[name]
        if scram_verifier_matches(password, previous.get(name, ""))
        else scram_verifier(password)
        for name, password in config.users
    }
    ini_text, userlist_text = ini_render(config), userlist_render(verifiers)
    server_verifier_set(config.upstream, verifiers[config.upstream.user])
    private_file_write(userlist, userlist_text)
    private_file_write(ini, ini_text)
    return ini, userlist
