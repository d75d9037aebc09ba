"""Environment variables, read one way: each value validated, each error a
`ConfigError` naming the variable, the problem and the fix.

The `*_parse` functions check one value; the `env_*` functions read a variable from
a mapping (`os.environ`, or the variables handed to a renderer) with a default.
Digits are ASCII digits only: `int()` would take '²' or Arabic-Indic digits, which
PgBouncer and gunicorn do not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import ConfigError

__all__ = [
    "bool_parse",
    "choice_parse",
    "env_bool",
    "env_int",
    "env_list",
    "env_port",
    "env_str",
    "int_parse",
    "port_parse",
    "seconds_parse",
    "text_parse",
]

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def int_parse(
    variable: str, value: str, *, minimum: int = 0, maximum: int | None = None
) -> int:
    """A whole number from `minimum` to `maximum` (inclusive)."""
    text = value.strip()
    ok = bool(_DIGITS.fullmatch(text))
    if ok and (int(text) < minimum or (maximum is not None and int(text) > maximum)):
        ok = False
    if not ok:
        span = (
            f"from {minimum} to {maximum}"
            if maximum is not None
            else f"of at least {minimum}"
        )
        raise ConfigError(
            variable,
            f"{value!r} is not a whole number {span}",
            f"set {variable} to a number {span} in ASCII digits, or unset it",
        )
    return int(text)


def port_parse(variable: str, value: str) -> int:
    """A TCP port, 1 to 65535."""
    try:
        return int_parse(variable, value, minimum=1, maximum=65535)
    except ConfigError:
        raise ConfigError(
            variable,
            f"{value!r} is not a port number",
            f"set {variable} to a number from 1 to 65535, or unset it",
        ) from None


def seconds_parse(variable: str, value: str) -> str:
    """A number of seconds as PgBouncer writes it: `30` or `0.5`."""
    if not _SECONDS.fullmatch(value.strip()):
        raise ConfigError(
            variable,
            f"{value!r} is not a number of seconds",
            f"set {variable} to seconds, e.g. 30 or 0.5 (0 disables), or unset it",
        )
    return value.strip()


def bool_parse(variable: str, value: str) -> bool:
    """1/0, true/false, yes/no, on/off."""
    word = value.strip().lower()
    if word not in TRUE | FALSE:
        raise ConfigError(
            variable, f"{value!r} is not a boolean", f"set {variable} to 1 or 0"
        )
    return word in TRUE


def choice_parse(variable: str, value: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, case-insensitive, returned in lower case."""
    word = value.strip().lower()
    if word not in choices:
        raise ConfigError(
            variable,
            f"{value!r} is not one of {', '.join(choices)}",
            f"set {variable} to one of {', '.join(choices)}",
        )
    return word


def text_parse(variable: str, value: str) -> str:
    """A value on one line (it goes into a line-based file), stripped."""
    if any(ch in value for ch in "\r\n\0"):
        raise ConfigError(
            variable, "contains a line break", f"put {variable} on one line"
        )
    return value.strip()


def env_str(env: Mapping[str, str], name: str, default: str = "") -> str:
    return env.get(name, default).strip()


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    return bool_parse(name, raw)


def env_int(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int = 0,
    maximum: int | None = None,
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    return int_parse(name, raw, minimum=minimum, maximum=maximum)


def env_port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    return port_parse(name, raw) if raw else default


def env_list(env: Mapping[str, str], name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env.get(name, default).split(",") if item.strip()]
