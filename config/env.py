"""Typed reads of environment variables, each error naming the variable and the fix."""

from __future__ import annotations

import os

from django_pgbouncer.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise ConfigError(name, f"{raw!r} is not a boolean", f"set {name} to 1 or 0")
    return value in _TRUE


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ConfigError(
            name,
            f"{raw!r} is not a whole number of at least {minimum}",
            f"set {name} to a number such as {max(default, minimum)}, or unset it",
        )
    return int(raw)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


# The web tier's size, read by config/gunicorn.py and by the connection budget check.
def web_processes() -> int:
    return env_int("WEB_CONCURRENCY", 2, minimum=1)


def web_threads() -> int:
    return env_int("GUNICORN_THREADS", 4, minimum=1)
