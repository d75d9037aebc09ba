"""Errors of the stack, each a message for a person: what failed and what to do."""


class StackError(RuntimeError):
    """A piece of the stack could not start or stopped; the message names the fix."""


class ServersMissing(StackError):
    """PostgreSQL or PgBouncer is not installed (tests skip on a laptop for this one,
    and fail in CI)."""
