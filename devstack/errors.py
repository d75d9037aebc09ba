"""Errors of the stack, each a message for a person: what failed and what to do."""


class StackError(RuntimeError):
    """A piece of the stack could not start or stopped; the message names the fix."""
