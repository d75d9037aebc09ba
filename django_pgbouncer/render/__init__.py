"""PgBouncer's files from environment variables: `pgbouncer.ini`, `userlist.txt`
with SCRAM verifiers, and the writer that stores them (and the matching verifier in
PostgreSQL) without ever leaving half a file or a password on disk."""

from .files import (
    pgbouncer_binary,
    pgbouncer_files_write,
    pgbouncer_version_detect,
    private_file_write,
    private_files_write,
    server_verifier_set,
)
from .ini import (
    SETTINGS,
    PgBouncerConfig,
    Setting,
    Version,
    ini_render,
    pgbouncer_config_from_env,
    version_parse,
)
from .scram import SCRAM_ITERATIONS, scram_verifier, scram_verifier_matches
from .userlist import userlist_parse, userlist_render

__all__ = [
    "SCRAM_ITERATIONS",
    "SETTINGS",
    "PgBouncerConfig",
    "Setting",
    "Version",
    "ini_render",
    "pgbouncer_binary",
    "pgbouncer_config_from_env",
    "pgbouncer_files_write",
    "pgbouncer_version_detect",
    "private_file_write",
    "private_files_write",
    "scram_verifier",
    "scram_verifier_matches",
    "server_verifier_set",
    "userlist_parse",
    "userlist_render",
    "version_parse",
]
