"""A statement as the guard's messages show it: on one line, every string literal
masked and every comment dropped, since either may hold a secret
(`SET app.api_key = E'...'`). PostgreSQL's own scanner finds them, so an escape
string, a Unicode string or a dollar quote with any tag is masked like a plain one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pglast.parser import ParseError, scan

__all__ = ["statement_mask"]

# String constants of every form: '', E'', $tag$, U&'', B'' and X''.
_LITERALS = frozenset({"SCONST", "USCONST", "BCONST", "XCONST"})
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
# Where the text stops being safe to show when the scanner cannot read it.
_UNSAFE = re.compile(r"['\"$\\]|--|/\*")


def _shown(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _placeholder(text: str, placeholders: Sequence[str]) -> str:
    number = int(text[1:]) if text[1:].isdigit() else 0
    return placeholders[number - 1] if 0 < number <= len(placeholders) else text


def statement_mask(
    sql: str, *, placeholders: Sequence[str] = (), limit: int = 200
) -> str:
    """`sql` for a message. `placeholders`: the text each `$n` stood for in the
    caller's SQL (`%s`), so the message shows what the code wrote."""
    try:
        tokens = scan(sql)
    except ParseError:
        # An unterminated literal: show only what comes before any quote.
        return _shown(_UNSAFE.split(sql, maxsplit=1)[0], limit - 4) + " ..."
    parts: list[str] = []
    end = 0
    for token in tokens:
        text = sql[token.start : token.end + 1]
        if token.start > end:
            parts.append(" ")
        end = token.end + 1
        if token.name in _COMMENTS:
            parts.append(" ")
        elif token.name in _LITERALS:
            parts.append("'...'")
        elif token.name == "PARAM":
            parts.append(_placeholder(text, placeholders))
        else:
            parts.append(text)
    return _shown("".join(parts), limit)
