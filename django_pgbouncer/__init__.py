"""Django behind PgBouncer, done right: configuration, safety and process glue."""

from .databases import (
    DIRECT_ALIAS,
    POOL_MODES,
    database_config,
    direct_database_config,
    migration_alias,
)
from .dburl import PostgresURL, postgres_url_parse
from .errors import ConfigError

__all__ = [
    "DIRECT_ALIAS",
    "POOL_MODES",
    "ConfigError",
    "PostgresURL",
    "database_config",
    "direct_database_config",
    "migration_alias",
    "postgres_url_parse",
]
