"""The guard: reading SQL for session state, the execute wrapper that stops it on
transaction-pooled aliases, and the check that drops connections PgBouncer closed."""

from .classify import session_state_find
from .hazards import HAZARDS, Finding, Hazard
from .stale import stale_connections_close
from .wrapper import (
    SessionStateGuard,
    guard_install,
    session_state_allowed,
    session_state_found,
)

__all__ = [
    "HAZARDS",
    "Finding",
    "Hazard",
    "SessionStateGuard",
    "guard_install",
    "session_state_allowed",
    "session_state_find",
    "session_state_found",
    "stale_connections_close",
]
