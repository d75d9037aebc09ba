"""The runtime guard: stops (or logs) SQL that would leave state in a pooled session.

Installed with `connection.execute_wrapper()` on every connection of an alias whose
`DATABASES` entry says it goes through PgBouncer in transaction or statement mode
(`database_config(guard=...)`); the direct alias is never guarded. Modes: "raise" (the
default under DEBUG and in tests), "log" (the default in production), "off".
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal
from psycopg.sql import SQL, Composable, Identifier, Placeholder

from ..conf import GuardMode, alias_options
from ..errors import SessionStateError
from .classify import session_state_find
from .hazards import HAZARDS, Finding
from .mask import statement_mask

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = [
    "SessionStateGuard",
    "guard_install",
    "session_state_allowed",
    "session_state_found",
]

logger = logging.getLogger("django_pgbouncer.guard")
# Sent for every finding, whatever the mode (metrics count them): alias, finding.
session_state_found = Signal()
_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "session_state_allowed", default=False
)


@contextmanager
def session_state_allowed() -> Iterator[None]:
    """Let the block run session-state SQL on a pooled alias, knowingly.

    For code that pins its own server connection for the whole block (it runs inside
    one transaction, and cleans up before it ends) or accepts the consequences.
    """
    token = _allowed.set(True)
    try:
        yield
    finally:
        _allowed.reset(token)


def _message(alias: str, finding: Finding) -> str:
    return (
        f"'{finding.statement}' on the database alias {alias!r}, which goes through "
        f"PgBouncer in transaction pooling mode: {finding.hazard.why}. Instead: "
        f"{finding.hazard.instead}. To keep session state on purpose, use the "
        "'direct' alias or wrap the code in "
        "django_pgbouncer.session_state_allowed()."
    )


class SessionStateGuard:
    """An execute wrapper; one per connection wrapper."""

    def __init__(self, alias: str, mode: GuardMode) -> None:
        self.alias, self.mode = alias, mode

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        # Every query passes here: the common case (a plain str, no finding) takes
        # a few attribute reads and one cached classification (bench.guard_cost).
        if self.mode != GuardMode.OFF and not _allowed.get():
            self._check(sql, params, many, context["connection"], context["cursor"])
        return execute(sql, params, many, context)

    def check(
        self, sql: Any, params: Any, *, many: bool, connection: BaseDatabaseWrapper
    ) -> None:
        """Raise or log when `sql` would leave session state (per the mode)."""
        if self.mode != GuardMode.OFF and not _allowed.get():
            self._check(sql, params, many, connection, None)

    def _check(
        self,
        sql: Any,
        params: Any,
        many: bool,
        connection: BaseDatabaseWrapper,
        cursor: Any,
    ) -> None:
        finding = _find(sql, params, many, connection, cursor)
        if finding is None:
            return
        session_state_found.send(SessionStateGuard, alias=self.alias, finding=finding)
        if self.mode == GuardMode.RAISE:
            raise SessionStateError(_message(self.alias, finding))
        logger.warning("%s", _message(self.alias, finding))


def _find(
    sql: Any, params: Any, many: bool, connection: BaseDatabaseWrapper, cursor: Any
) -> Finding | None:
    if type(sql) is not str:  # psycopg's sql.SQL(...), sql.Composed
        as_string = getattr(sql, "as_string", None)
        sql = as_string(connection.connection) if as_string else str(sql)
    in_transaction = connection.in_atomic_block
    # A server-side cursor outside atomic() is DECLAREd WITH HOLD by psycopg:
    # the SQL we see is its SELECT, so the cursor itself tells.
    if not in_transaction and getattr(getattr(cursor, "cursor", None), "name", None):
        return Finding(HAZARDS["hold_cursor"], statement_mask(sql))
    return session_state_find(
        sql, in_transaction=in_transaction, params=params, many=many
    )


def _callproc_sql(name: str | Identifier, count: int) -> Composable:
    """The statement Django's cursor sends for callproc(name, args), with
    placeholders where it inlines the arguments."""
    ident = name if isinstance(name, Identifier) else Identifier(name)
    return SQL("SELECT * FROM {}({})").format(
        ident, SQL(", ").join([Placeholder()] * count)
    )


def _callproc_guard(connection: BaseDatabaseWrapper, guard: SessionStateGuard) -> None:
    """Guard `cursor.callproc()`: Django's cursor sends its SELECT straight to
    psycopg, past every execute wrapper, so the guard wraps the psycopg cursor
    class of this connection (Django's own, or the one OPTIONS names)."""
    raw = connection.connection
    factory: type[Any] = raw.cursor_factory
    if getattr(factory, "pgbouncer_guarded", False):
        return

    class GuardedCursor(factory):  # type: ignore[misc]
        pgbouncer_guarded = True

        def callproc(self, name: Any, args: Sequence[Any] | None = None) -> Any:
            guard.check(
                _callproc_sql(name, len(args or ())),
                list(args or ()),
                many=False,
                connection=connection,
            )
            return super().callproc(name, args)

    raw.cursor_factory = GuardedCursor


def guard_install(
    sender: object, connection: BaseDatabaseWrapper, **kwargs: object
) -> None:
    """`connection_created` receiver: guard transaction-pooled aliases, once per
    connection wrapper, and the callproc() of each new database connection."""
    options = alias_options(connection.settings_dict, alias=connection.alias)
    if not options.transaction_pooled or options.guard is GuardMode.OFF:
        return
    guard = next(
        (w for w in connection.execute_wrappers if isinstance(w, SessionStateGuard)),
        None,
    )
    if guard is None:
        guard = SessionStateGuard(connection.alias, options.guard)
        # First in the list: a connection opened inside `with execute_wrapper(w):`
        # would otherwise have the guard popped in place of `w` when that block ends.
        connection.execute_wrappers.insert(0, guard)
    _callproc_guard(connection, guard)
