"""Every error the app raises, each naming what to change."""

from django.core.exceptions import ImproperlyConfigured

__all__ = ["ConfigError"]


class ConfigError(ImproperlyConfigured):
    """A configuration value is missing or malformed; the message names the fix."""

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        self.variable = variable
        self.problem = problem
        self.fix = fix
        super().__init__(f"{variable}: {problem}. Fix: {fix}")
