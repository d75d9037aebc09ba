"""PostgreSQL URLs: parsed with urllib, percent-decoded, validated, never printed whole.

A password may hold any character; characters that a URL reserves (`@ : / ? # %`
and space) must be percent-encoded, e.g. `p%40ss` for `p@ss`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .errors import ConfigError

__all__ = ["SCHEMES", "PostgresURL", "postgres_url_parse"]

SCHEMES = ("postgres", "postgresql", "pgsql")
_ENCODE_HINT = (
    "write it as postgres://USER:PASSWORD@HOST:PORT/NAME, percent-encoding any "
    "reserved character in the password (@ as %40, : as %3A, / as %2F, # as %23, "
    "% as %25)"
)


@dataclass(frozen=True)
class PostgresURL:
    """The parts of a PostgreSQL URL, decoded."""

    user: str
    password: str = field(repr=False)
    host: str
    port: int
    name: str
    params: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def with_(self, **changes: object) -> PostgresURL:
        """A copy with some parts replaced (host, port, name, ...)."""
        values = {
            "user": self.user,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "name": self.name,
            "params": self.params,
        }
        values.update(changes)
        return PostgresURL(**values)  # type: ignore[arg-type]

    def url(self) -> str:
        """The URL again, every part percent-encoded."""
        return self._url(quote(self.password, safe=""))

    def redacted(self) -> str:
        """The URL with the password masked, and the values of query parameters
        (`?password=`, `?sslpassword=` ...): safe for logs and error messages."""
        return self._url("***" if self.password else "", masked_params=True)

    def _url(self, password: str, *, masked_params: bool = False) -> str:
        auth = quote(self.user, safe="")
        if password:
            auth += ":" + password
        query = "&".join(
            f"{quote(k)}={'***' if masked_params else quote(v)}" for k, v in self.params
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        tail = f"?{query}" if query else ""
        return f"postgres://{auth}@{host}:{self.port}/{quote(self.name, safe='')}{tail}"


def postgres_url_parse(value: str, *, variable: str) -> PostgresURL:
    """Parse and validate `value`; errors name `variable` and never echo the URL."""
    if not value.strip():
        raise ConfigError(variable, "is empty", _ENCODE_HINT)
    if any(ch in value for ch in "\r\n\0"):
        raise ConfigError(variable, "contains a line break or NUL byte", _ENCODE_HINT)
    parts = urlsplit(value.strip())
    if parts.scheme not in SCHEMES:
        shown = parts.scheme or "(none)"
        raise ConfigError(
            variable,
            f"the scheme {shown!r} is not one of {', '.join(SCHEMES)}",
            _ENCODE_HINT,
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(
            variable,
            "the port is not a number from 1 to 65535 (a password holding ':', "
            "'/', '#' or '?' that is not percent-encoded also looks like this)",
            _ENCODE_HINT,
        ) from None
    if not parts.hostname:
        raise ConfigError(variable, "has no host", _ENCODE_HINT)
    if not parts.username:
        raise ConfigError(variable, "has no user name", _ENCODE_HINT)
    name = unquote(parts.path.lstrip("/"))
    if not name or "/" in name:
        raise ConfigError(variable, "has no database name after the host", _ENCODE_HINT)
    return PostgresURL(
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        host=unquote(parts.hostname),
        port=port or 5432,
        name=name,
        params=tuple(parse_qsl(parts.query)),
    )
