"""Read replicas with read-your-writes: a database router, the middleware that
carries each client's last commit position in a signed cookie, and the
`DATABASES` entries for replicas reached through PgBouncer.

Settings (config/settings.py does this when REPLICA_DATABASE_URLS is set)::

    DATABASES.update(replica_database_configs(urls=[...]))
    DATABASE_ROUTERS = ["django_pgbouncer.routing.ReplicaRouter"]
    PGBOUNCER_ROUTING = {"primary": "default", "replicas": ["replica1"]}
    MIDDLEWARE: "django_pgbouncer.routing.ReadYourWritesMiddleware" right after
    BackendLossMiddleware

Writes, reads inside `atomic()`, reads after a write in the same request and
reads of other methods than GET, HEAD and OPTIONS go to the primary. Other reads
go to a replica that is up, lags less than `max_lag_seconds`, and has replayed
the client's last commit; without one, to the primary. A replica that fails
under a read-only request is left alone for `down_seconds`, and the request runs
again on the primary.
"""

from .config import replica_database_configs
from .lsn import ReplicaStatus, Route, lsn_format, lsn_parse, replica_choose
from .middleware import ReadYourWritesMiddleware
from .router import ReplicaRouter

__all__ = [
    "ReadYourWritesMiddleware",
    "ReplicaRouter",
    "ReplicaStatus",
    "Route",
    "lsn_format",
    "lsn_parse",
    "replica_choose",
    "replica_database_configs",
]
