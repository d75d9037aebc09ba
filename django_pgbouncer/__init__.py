"""Django behind PgBouncer, done right: configuration, safety and observability.

The settings contract is in `django_pgbouncer.conf`; the parts are `guard`
(session-state SQL), `observe` (the pool's state, probes, metrics) and `render`
(PgBouncer's files).
"""

from .conf import GuardMode, PoolMode
from .databases import (
    DIRECT_ALIAS,
    PostgresURL,
    database_config,
    direct_database_config,
    migration_alias,
    postgres_url_parse,
)
from .errors import ConfigError, ConsoleUnavailable, SessionStateError, redact
from .guard import session_state_allowed

__all__ = [
    "DIRECT_ALIAS",
    "ConfigError",
    "ConsoleUnavailable",
    "GuardMode",
    "PoolMode",
    "PostgresURL",
    "SessionStateError",
    "database_config",
    "direct_database_config",
    "migration_alias",
    "postgres_url_parse",
    "redact",
    "session_state_allowed",
]
