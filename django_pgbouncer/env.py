"""Environment variables, read one way: each value validated, each error a
`ConfigError` naming the variable, the problem and the fix.

The `*_parse` functions check one value; the `env_*` functions read a variable from
a mapping (`os.environ`, or the variables handed to a renderer) with a default.
Digits are ASCII digits only: `int()` would take '²' or Arabic-Indic digits, which
PgBouncer and gunicorn do not. Numbers stop at 2**31 - 1: PgBouncer reads its
settings into C ints and wraps a larger one without a word (max_client_conn =
4294967297 runs as 1). Text for PgBouncer's files holds no control character.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from .errors import ConfigError

__all__ = [
    "INT_MAX",
    "bool_parse",
    "choice_parse",
    "env_bool",
    "env_int",
    "env_list",
    "env_port",
    "env_str",
    "int_parse",
    "line_check",
    "port_parse",
    "seconds_parse",
    "text_parse",
    "version_parse",
]

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
# PgBouncer keeps times in microseconds: a seventh decimal is lost, and 0.0000001
# would silently become 0, which disables the timeout.
_SECONDS = re.compile(r"[0-9]+(\.[0-9]{1,6})?", re.ASCII)
_VERSION = re.compile(r"([0-9]+)\.([0-9]+)", re.ASCII)
# The largest C int: PgBouncer's counts wrap past it, its times (in microseconds,
# 64 bits) past about 9.2e12 s; no count or duration needs more.
INT_MAX = 2**31 - 1
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def int_parse(
    variable: str, value: str, *, minimum: int = 0, maximum: int | None = None
) -> int:
    """A whole number from `minimum` to `maximum` (inclusive; INT_MAX if None)."""
    ceiling = INT_MAX if maximum is None else maximum
    text = value.strip()
    if not (_DIGITS.fullmatch(text) and minimum <= int(text) <= ceiling):
        span = f"from {minimum} to {ceiling}"
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
    text = value.strip()
    if not _SECONDS.fullmatch(text) or float(text) > INT_MAX:
        raise ConfigError(
            variable,
            f"{value!r} is not a number of seconds from 0 to {INT_MAX} with at most "
            "6 decimals",
            f"set {variable} to seconds, e.g. 30 or 0.5 (0 disables), or unset it",
        )
    return text


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


def _unwritable(value: str) -> str | None:
    """The first character a line of PgBouncer's files must not hold, as U+XXXX:
    a control character (line breaks, NUL, tab), a line or paragraph separator,
    a format character, a surrogate (bytes that were not UTF-8), or an unassigned
    or private-use code point."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return f"U+{ord(ch):04X}"
    return None


def line_check(variable: str, value: str, *, what: str = "value") -> str:
    """`value` as it is, if it fits on a line of PgBouncer's files; else the
    ConfigError, naming the character by its code point, never the value."""
    found = _unwritable(value)
    if found:
        raise ConfigError(
            variable,
            f"the {what} contains a line break or other control character "
            f"({found}), which PgBouncer's files cannot hold",
            f"remove it from {variable} (in a URL, look for a percent-encoded "
            "one such as %0A, %0D, %09 or %00)",
        )
    return value


def text_parse(variable: str, value: str) -> str:
    """A value on one line (it goes into a line-based file), stripped."""
    return line_check(variable, value.strip())


def version_parse(text: str, *, variable: str = "PGBOUNCER_VERSION") -> tuple[int, int]:
    """`1.18.0`, `PgBouncer 1.18.0`, or `v1.25.2-p0` -> (1, 18)."""
    match = _VERSION.search(text)
    if not match:
        raise ConfigError(
            variable,
            f"{text!r} is not a PgBouncer version",
            f"set {variable} to the version that will run, e.g. 1.18, in ASCII digits",
        )
    return int(match.group(1)), int(match.group(2))


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
