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
from ..env import line_check
from ..errors import ConfigError, redact
from .ini import Version, ini_render, pgbouncer_config_from_env, version_parse
from .scram import scram_verifier, scram_verifier_matches
from .userlist import userlist_parse, userlist_render

__all__ = [
    "pgbouncer_binary",
    "pgbouncer_files_write",
    "pgbouncer_version_detect",
    "private_file_write",
    "private_files_write",
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


def _private_temp_write(path: Path, text: str) -> Path:
    """`text` in a new 0600 file beside `path`, flushed to disk; its path."""
    # mkstemp creates the file 0600.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def private_files_write(texts: Mapping[Path, str]) -> None:
    """Write each text to its path, mode 0600 from the first byte.

    Every file is written whole beside its target before any is renamed over its
    target, so a failure while writing leaves every old file as it was, and a
    reader never sees half a file.
    """
    written: dict[Path, Path] = {}
    try:
        for path, text in texts.items():
            written[path] = _private_temp_write(path, text)
        for path, tmp in written.items():
            os.replace(tmp, path)
    finally:
        for tmp in written.values():
            tmp.unlink(missing_ok=True)


def private_file_write(path: Path, text: str) -> None:
    """Write `text` to `path` as private_files_write does."""
    private_files_write({path: text})


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
    auth_file = line_check("--output-dir", str(userlist.resolve()), what="path")
    config = pgbouncer_config_from_env(env, version=version, auth_file=auth_file)
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
    private_files_write({userlist: userlist_text, ini: ini_text})
    return ini, userlist
