"""Every error the app raises, each naming what to change."""

from django.core.exceptions import ImproperlyConfigured
from django.db import NotSupportedError

__all__ = ["ConfigError", "SessionStateError"]


class ConfigError(ImproperlyConfigured):
    """A configuration value is missing or malformed; the message names the fix."""

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        self.variable = variable
        self.problem = problem
        self.fix = fix
        super().__init__(f"{variable}: {problem}. Fix: {fix}")


class SessionStateError(NotSupportedError):
    """A statement would leave state in a pooled server session; names the fix."""
