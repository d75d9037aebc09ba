"""Test databases for aliases that go through PgBouncer.

PgBouncer keeps the server connections it opened to a database after their clients
have gone (until `server_idle_timeout`, ten minutes by default), and PostgreSQL
refuses to drop a database, or to copy it as a template, while another session is
connected to it. Django's test runners create, copy and drop test databases over the
alias's own connection, so through PgBouncer:

- `test --parallel` fails cloning the freshly migrated test database: 'source
  database "test_app" is being accessed by other users';
- every run fails dropping its test database at the end, and the next run fails the
  same way dropping the test database an interrupted run left behind.

`SessionEndingCreation` ends those sessions from PostgreSQL's side
(`pg_terminate_backend()`) just before Django drops or copies a test database;
PgBouncer forgets a server connection that PostgreSQL closed and opens a new one when
a client next needs it. It needs neither PgBouncer's admin console (the web's console
user stays a stats user) nor a direct alias: a role may end its own sessions, and
PgBouncer logs in as the client's role. Only test databases are touched.

`creations_install()` (run by `AppConfig.ready()`) gives it to each alias that goes
through PgBouncer, in place of the backend's own creation object: no custom backend
and no TEST_RUNNER, so `manage.py test`, pytest-django and any other runner that uses
Django's creation API get it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, cast

import psycopg
from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.creation import TEST_DATABASE_PREFIX, BaseDatabaseCreation

from .conf import alias_options, app_settings
from .errors import ConfigError

__all__ = [
    "SessionEndingCreation",
    "creation_install",
    "creations_install",
    "database_sessions_end",
]

# Sessions with a role: PostgreSQL stops autovacuum workers (no role) itself before a
# DROP or a copy. (backend_type would say so too, but is hidden from a role that is
# not the session's own.) False, with a warning: the session ended meanwhile.
_END_SESSIONS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = ANY(%s) AND pid <> pg_backend_pid() AND usesysid IS NOT NULL"
    # Only sessions at rest, as PgBouncer keeps them: a session at work is a run
    # or a person using the database, and Django's drop then fails naming it. (Another
    # role's state is hidden: NULL; ending it fails, and the error names the role.)
    " AND (state = 'idle' OR state IS NULL)"
)
_OTHER_ROLES = (
    "SELECT DISTINCT usename FROM pg_stat_activity"
    " WHERE datname = ANY(%s) AND usename <> current_user ORDER BY 1"
)


def database_sessions_end(connection: BaseDatabaseWrapper, names: Sequence[str]) -> int:
    """End every other session on the databases `names`, over the alias's own path
    to the server; return how many were ended."""
    connection.close()  # its own, if it is on one of them
    # The maintenance database, as Django's CREATE and DROP DATABASE use.
    with connection._nodb_cursor() as cursor:
        try:
            cursor.execute(_END_SESSIONS, [list(names)])
        except DatabaseError as error:
            if not isinstance(error.__cause__, psycopg.errors.InsufficientPrivilege):
                raise
            # A superuser's session, or another role's: none was ended.
            cursor.execute(_OTHER_ROLES, [list(names)])
            roles = [str(role) for (role,) in cursor.fetchall()]
            raise _not_permitted(connection.alias, names, roles) from None
        return sum(1 for (ended,) in cursor.fetchall() if ended)


def _not_permitted(
    alias: str, names: Sequence[str], roles: Sequence[str]
) -> ConfigError:
    owners = ", ".join(map(repr, roles)) or "another role"
    return ConfigError(
        f"DATABASES[{alias!r}]",
        f"its role may not end the sessions of {owners} on the test database "
        f"{', '.join(names)}, and PostgreSQL cannot drop or copy a database while "
        "other sessions are on it",
        "let PgBouncer log in to PostgreSQL as the alias's own role (pass-through "
        "authentication, as `manage.py pgbouncer_config` renders it) rather than as "
        "a superuser or a shared role, or GRANT pg_signal_backend TO the alias's "
        "role; and close any other session (psql) on the test database",
    )


class SessionEndingCreation(BaseDatabaseCreation):
    """The backend's own creation, ending the other sessions on a test database
    before Django drops it or copies it. Mixed in ahead of the backend's class."""

    def create_test_db(
        self,
        verbosity: int = 1,
        autoclobber: bool = False,
        serialize: bool | None = True,
        keepdb: bool = False,
    ) -> str:
        self._real_names.add(str(self.connection.settings_dict["NAME"]))
        name = self._test_name()
        if not keepdb and self._test_database_exists(name):
            # One an interrupted run left: Django asks, then drops it. Ask first,
            # so that nobody's sessions end unless the answer is yes.
            if not autoclobber and not _drop_confirmed(name):
                self.log("Tests cancelled.")
                sys.exit(1)
            self._sessions_end([name], verbosity)
            autoclobber = True
        return super().create_test_db(
            verbosity=verbosity,
            autoclobber=autoclobber,
            serialize=serialize,
            keepdb=keepdb,
        )

    def clone_test_db(
        self,
        suffix: Any,
        verbosity: int = 1,
        autoclobber: bool = False,
        keepdb: bool = False,
    ) -> None:
        # The template, which the migrations just used through PgBouncer; and the
        # clone, which an interrupted run may have left (Django drops it first).
        source = self.connection.settings_dict["NAME"]
        clone = self.get_test_db_clone_settings(suffix)["NAME"]
        self._sessions_end([source, clone], verbosity)
        super().clone_test_db(suffix, verbosity, autoclobber, keepdb)

    def destroy_test_db(
        self,
        old_database_name: str | None = None,
        verbosity: int = 1,
        keepdb: bool = False,
        suffix: str | None = None,
    ) -> None:
        if not keepdb:
            name = (
                self.connection.settings_dict["NAME"]
                if suffix is None
                else self.get_test_db_clone_settings(suffix)["NAME"]
            )
            self._sessions_end([name], verbosity)
        super().destroy_test_db(old_database_name, verbosity, keepdb, suffix)

    def _test_name(self) -> str:
        # Django's own rule (BaseDatabaseCreation._get_test_db_name).
        named = self.connection.settings_dict["TEST"].get("NAME")
        return str(
            named or TEST_DATABASE_PREFIX + self.connection.settings_dict["NAME"]
        )

    @property
    def _real_names(self) -> set[str]:
        # The databases the aliases name outside tests, seen before Django points
        # them at test databases: never ended, whatever TEST NAME says.
        if not hasattr(self, "_real"):
            self._real: set[str] = set()
        return self._real

    def _is_test_database(self, name: str) -> bool:
        # A guard against ending sessions on a real database, whatever the caller.
        if name in self._real_names:
            return False
        named = self.connection.settings_dict["TEST"].get("NAME")
        return name.startswith(TEST_DATABASE_PREFIX) or bool(
            named and name.startswith(named)
        )

    def _test_database_exists(self, name: str) -> bool:
        with self.connection._nodb_cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            return cursor.fetchone() is not None

    def _sessions_end(self, names: Sequence[str], verbosity: int) -> None:
        names = [name for name in names if self._is_test_database(name)]
        if not names:
            return
        ended = database_sessions_end(self.connection, names)
        if ended and verbosity >= 2:
            self.log(
                f"Ended {ended} session(s) on {', '.join(names)} for alias "
                f"{self.connection.alias!r} (PgBouncer keeps server connections)."
            )


# One combined class per backend creation class.
_combined: dict[type[BaseDatabaseCreation], type[BaseDatabaseCreation]] = {}


def _with_sessions_ended(
    kind: type[BaseDatabaseCreation],
) -> type[BaseDatabaseCreation]:
    if kind not in _combined:
        name = f"SessionEnding{kind.__name__}"
        _combined[kind] = cast(
            type[BaseDatabaseCreation], type(name, (SessionEndingCreation, kind), {})
        )
    return _combined[kind]


def _drop_confirmed(name: str) -> bool:
    # Django's own question (BaseDatabaseCreation._create_test_db).
    answer = input(
        f"Type 'yes' if you would like to try deleting the test database '{name}', "
        "or 'no' to cancel: "
    )
    return answer == "yes"


def creation_install(connection: BaseDatabaseWrapper) -> None:
    """Give `connection` the session-ending creation, once."""
    kind = type(connection.creation)
    if not issubclass(kind, SessionEndingCreation):
        creation = _with_sessions_ended(kind)(connection)
        assert isinstance(creation, SessionEndingCreation)
        creation._real_names.add(str(connection.settings_dict["NAME"]))
        connection.creation = creation


def creations_install() -> None:
    """Each alias that goes through PgBouncer (any pool mode: each keeps server
    connections) gets the session-ending creation, on this thread's connection
    objects: the ones the test runners set up test databases with."""
    from django.db import connections

    for alias, entry in app_settings().databases.items():
        if alias_options(entry, alias=alias).pool_mode is not None:
            creation_install(connections[alias])
