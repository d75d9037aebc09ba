"""The site's typed reads of `os.environ`, through django_pgbouncer.env: each error
a ConfigError naming the variable, the problem and the fix."""

from __future__ import annotations

import os

from django_pgbouncer import env

__all__ = [
    "env_bool",
    "env_int",
    "env_list",
    "env_port",
    "env_str",
    "web_processes",
    "web_threads",
]


def env_str(name: str, default: str = "") -> str:
    return env.env_str(os.environ, name, default)


def env_bool(name: str, default: bool) -> bool:
    return env.env_bool(os.environ, name, default)


def env_int(
    name: str, default: int, *, minimum: int = 0, maximum: int | None = None
) -> int:
    return env.env_int(os.environ, name, default, minimum=minimum, maximum=maximum)


def env_port(name: str, default: int) -> int:
    return env.env_port(os.environ, name, default)


def env_list(name: str, default: str = "") -> list[str]:
    return env.env_list(os.environ, name, default)


# The web tier's size, read by config/gunicorn.py and by the connection budget check.
def web_processes() -> int:
    return env_int("WEB_CONCURRENCY", 2, minimum=1)


def web_threads() -> int:
    return env_int("GUNICORN_THREADS", 4, minimum=1)
