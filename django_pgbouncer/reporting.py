"""Error pages and error reports without credentials.

Django's own filter hides a setting by its name only (API, AUTH, TOKEN, KEY,
SECRET, PASS, SIGNATURE): `DATABASE_URL` and every other URL with a password in it
show in full, on the debug page and in the report mailed to ADMINS, and so does
the environment that runserver copies into `request.META`. This filter hides, in
the settings, in `request.META` and in every frame's local variables:

- a value whose name says it is secret (Django's names, and DSN, CREDENTIAL,
  PRIVATE, CONNINFO);
- the password of any URL (`scheme://user:PASSWORD@host`), and of a libpq conninfo
  string (`password=...`);
- each `DATABASES` entry's `PASSWORD` and `OPTIONS`;
- any other occurrence, as written or percent-encoded, of a secret found by the
  rules above in the settings or the process environment (at least
  `MIN_SECRET_LENGTH` characters: masking every "pw" would garble the page).

`SecretExceptionReporter` masks the same in the exception's message and in the
messages of its causes, which a library may have written a URL into.

Use them with `DEFAULT_EXCEPTION_REPORTER_FILTER =
"django_pgbouncer.reporting.SecretReporterFilter"` and `DEFAULT_EXCEPTION_REPORTER =
"django_pgbouncer.reporting.SecretExceptionReporter"`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pprint import pformat
from types import FrameType
from typing import Any
from urllib.parse import unquote

from django.http import HttpRequest
from django.views.debug import (
    CallableSettingWrapper,
    ExceptionReporter,
    SafeExceptionReporterFilter,
)

from .conf import settings_all
from .errors import redact

__all__ = [
    "MIN_SECRET_LENGTH",
    "SecretExceptionReporter",
    "SecretReporterFilter",
    "secrets_collect",
]

MIN_SECRET_LENGTH = 6
HIDDEN_NAMES = re.compile(
    r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE"
    r"|CREDENTIAL|DSN|PRIVATE|CONNINFO",
    flags=re.IGNORECASE,
)
# The password of a URL: scheme://user:PASSWORD@ (any case of scheme).
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:(?P<pw>[^@\s]+)@")
# libpq's key=value form: password=secret or password='a secret'.
_CONNINFO_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s']+)", re.IGNORECASE
)
# Database entries: OPTIONS may carry sslpassword, a service file's secrets or
# whatever a backend accepts; none of it is needed to read a traceback.
_DATABASE_HIDDEN = ("PASSWORD", "OPTIONS")
# Frame variables can hold structures that contain themselves.
_DEPTH_MAX = 20


def _found(name: str, value: object) -> Iterator[str]:
    if isinstance(value, str):
        if HIDDEN_NAMES.search(name):
            yield value
        for match in _URL_PASSWORD.finditer(value):
            yield match["pw"]
            yield unquote(match["pw"])
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _found(str(key), item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _found(name, item)


def secrets_collect(items: Iterable[tuple[str, object]]) -> frozenset[str]:
    """The secret values among named `items` (settings, environment variables)."""
    return frozenset(
        secret
        for name, value in items
        for secret in _found(name, value)
        if len(secret) >= MIN_SECRET_LENGTH
    )


def _text_redact(text: str, secrets: Iterable[str]) -> str:
    return _CONNINFO_PASSWORD.sub(r"\g<head>***", redact(text, secrets))


class _Shown:
    """A frame variable as the page prints it (Django's `pprint` filter), with
    every secret masked: an object's repr can hold what its fields hide."""

    def __init__(self, value: object, secrets: frozenset[str]) -> None:
        self.value = value
        self.secrets = secrets

    def __repr__(self) -> str:
        try:
            text = pformat(self.value)
        except Exception as error:  # as Django's pprint filter does
            text = f"Error in formatting: {type(error).__name__}: {error}"
        return _text_redact(text, self.secrets)


class SecretReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, extended to credentials in URLs, `DATABASES` and the
    environment (see the module's docstring)."""

    hidden_settings = HIDDEN_NAMES

    def secrets(self) -> frozenset[str]:
        """The secrets to mask wherever they appear, as of now."""
        return self._seen(settings_all())[0]

    def _seen(self, values: dict[str, Any]) -> tuple[frozenset[str], str]:
        """The secrets among the settings and the environment, and the session
        cookie's name (Django hides that cookie too). Read at each report, never
        cached: settings and the environment may change."""
        secrets = secrets_collect([*values.items(), *os.environ.items()])
        return secrets, str(values.get("SESSION_COOKIE_NAME", "sessionid"))

    def cleanse(
        self,
        key: object,
        value: Any,
        secrets: frozenset[str],
        cookie: str = "",
        depth: int = 0,
    ) -> Any:
        """`value` with every credential masked; `key` is its name, if any."""
        if depth > _DEPTH_MAX:
            return value  # a structure that holds itself; its repr is still masked
        if isinstance(key, str) and (
            (cookie and key == cookie) or self.hidden_settings.search(key)
        ):
            return self.cleansed_substitute
        if key == "DATABASES" and isinstance(value, Mapping):
            value = {
                alias: {
                    k: self.cleansed_substitute if k in _DATABASE_HIDDEN else v
                    for k, v in entry.items()
                }
                if isinstance(entry, Mapping)
                else entry
                for alias, entry in value.items()
            }
        if isinstance(value, dict):
            return {
                k: self.cleanse(k, v, secrets, cookie, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            cleansed = [self.cleanse("", v, secrets, cookie, depth + 1) for v in value]
            return tuple(cleansed) if isinstance(value, tuple) else cleansed
        if isinstance(value, str):
            return _text_redact(value, secrets)
        if callable(value):
            return CallableSettingWrapper(value)
        return value

    def cleanse_setting(self, key: object, value: Any) -> Any:
        return self.cleanse(key, value, *self._seen(settings_all()))

    def get_safe_settings(self) -> dict[str, Any]:
        values = settings_all()
        seen = self._seen(values)
        return {k: self.cleanse(k, v, *seen) for k, v in values.items()}

    def get_safe_request_meta(self, request: HttpRequest) -> dict[str, Any]:
        if not hasattr(request, "META"):
            return {}
        seen = self._seen(settings_all())
        return {k: self.cleanse(k, v, *seen) for k, v in request.META.items()}

    def get_traceback_frame_variables(
        self, request: HttpRequest | None, tb_frame: FrameType
    ) -> Any:
        secrets, cookie = self._seen(settings_all())
        return [
            (name, _Shown(self.cleanse(name, value, secrets, cookie), secrets))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


class SecretExceptionReporter(ExceptionReporter):
    """Django's reporter, with credentials masked in the exception's message and
    in its causes' (the frames, settings and request go through the filter)."""

    def get_traceback_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().get_traceback_data()
        secrets = (
            self.filter.secrets()
            if isinstance(self.filter, SecretReporterFilter)
            else secrets_collect([*settings_all().items(), *os.environ.items()])
        )
        if "exception_value" in data:
            data["exception_value"] = _text_redact(data["exception_value"], secrets)
        for frame in data.get("frames", []):
            if frame.get("exc_cause") is not None:
                frame["exc_cause"] = _text_redact(str(frame["exc_cause"]), secrets)
        return data
