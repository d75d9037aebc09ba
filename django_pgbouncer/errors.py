"""Every error the app raises, each naming what to change; and `redact()`, the one
way a secret is kept out of a message."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import NotSupportedError

__all__ = ["ConfigError", "ConsoleUnavailable", "SessionStateError", "redact"]

MASK = "***"
# The password of any URL in the text: scheme://user:PASSWORD@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s]+(?=@)")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret masked: each of `secrets` as written and
    percent-encoded, and the password of any URL in it."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, MASK)
    return _URL_PASSWORD.sub(rf"\g<head>{MASK}", text)


class ConfigError(ImproperlyConfigured):
    """A configuration value is missing or malformed; the message names the fix."""

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        self.variable = variable
        self.problem = problem
        self.fix = fix
        super().__init__(f"{variable}: {problem}. Fix: {fix}")


class SessionStateError(NotSupportedError):
    """A statement would leave state in a pooled server session; names the fix."""


class ConsoleUnavailable(psycopg.OperationalError):
    """PgBouncer's admin console did not answer (down, refused, or timed out)."""
