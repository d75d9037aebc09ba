"""`userlist.txt`: user names and SCRAM-SHA-256 verifiers, never passwords."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["userlist_parse", "userlist_render"]

_USERLIST_LINE = re.compile(r'^"((?:[^"]|"")*)"\s+"((?:[^"]|"")*)"')


def userlist_parse(text: str) -> dict[str, str]:
    """user name -> secret, from the text of a `userlist.txt`."""
    entries = {}
    for line in text.splitlines():
        match = _USERLIST_LINE.match(line.strip())
        if match:
            name, secret = (g.replace('""', '"') for g in match.groups())
            entries[name] = secret
    return entries


def userlist_render(verifiers: Mapping[str, str]) -> str:
    """The text of `userlist.txt` from user name -> SCRAM verifier."""

    def quoted(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    for verifier in verifiers.values():
        if not verifier.startswith("SCRAM-SHA-256$"):
            raise ValueError("userlist.txt takes SCRAM-SHA-256 verifiers only")
    return "".join(f"{quoted(n)} {quoted(v)}\n" for n, v in verifiers.items())
