"""Does a SQL string leave state in the PostgreSQL session? A pure classifier.

Behind PgBouncer in transaction mode each transaction may run on another server
connection, so whatever a statement leaves in the session (a setting, a role, a lock,
a LISTEN, a prepared statement, a held cursor, a temporary table) is lost to its
author and inherited by strangers. The classifier reads the SQL the way PostgreSQL's
lexer does: comments, string literals, dollar quoting and quoted identifiers cannot
hide or fake a statement, case does not matter, and every statement of a
multi-statement string is read. The body of a `DO` block is read as SQL, since it
runs; the body of a `CREATE FUNCTION` is not, since it only runs when called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .hazards import HAZARDS, Finding

__all__ = ["session_state_find"]


# Parameters PgBouncer tracks per client and sets on whichever server connection
# serves it, so a SET of these is safe (PgBouncer docs, "track_extra_parameters").
# standard_conforming_strings is tracked too, but turning it off changes how string
# literals are read, which this lexer (and Django) assume on: it stays a finding.
TRACKED = frozenset({"client_encoding", "datestyle", "timezone", "application_name"})
ADVISORY_SESSION = frozenset(
    f"pg_{t}advisory_{op}{s}"
    for t in ("", "try_")
    for op in ("lock",)
    for s in ("", "_shared")
) | {"pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all"}
_TRUE = frozenset({"true", "t", "on", "yes", "y", "1"})

# Cheap pre-filter, run on every query: SQL that holds none of these cannot be a
# hazard, so most queries never reach the lexer. Substring tests on the lower-cased
# text (about 0.5 us) instead of a case-insensitive regex (about 8 us).
_TRIGGERS = (
    "listen",
    "advisory",
    "prepare",
    "execute",
    "dealloc",
    "declare",
    "temp",
    "load",
    "set_config",
    "dblink",
)
_DO = re.compile(r"\bdo\b")
# SET and RESET matter only at the start of a statement (not in UPDATE ... SET).
_STATEMENT_SET = re.compile(r"(?:^|;)\s*(?:re)?set\b")


def _worth_lexing(sql: str) -> bool:
    low = sql.lower()
    if any(word in low for word in _TRIGGERS) or ("do" in low and _DO.search(low)):
        return True
    if "set" not in low:
        return False
    # A comment may stand before a statement's SET: then only the lexer can tell.
    return bool(_STATEMENT_SET.search(low)) or "/*" in low or "--" in low


_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<line_comment>--[^\n]*)
      | (?P<block_comment>/\*)
      | (?P<estring>[eE]'(?:[^'\\]|\\.|'')*'?)
      | (?P<string>'(?:[^']|'')*'?)
      | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
      | (?P<qident>"(?:[^"]|"")*"?)
      | (?P<param>\$\d+|%s|%\(\w+\)s)
      | (?P<word>[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*)
      | (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
      | (?P<semi>;)
      | (?P<punct>.)""",
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # word (upper-cased), ident, string, punct, param, number
    value: str


def _lex(sql: str) -> list[tuple[list[_Tok], str]]:
    """Statements as (tokens, text); comments dropped, literals kept whole."""
    statements: list[list[_Tok]] = [[]]
    starts = [0]
    pos = 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        assert match is not None  # the last alternative matches any character
        kind, text = match.lastgroup or "punct", match.group()
        pos = match.end()
        if kind == "block_comment":
            depth = 1
            while depth and pos < len(sql):
                if sql.startswith("/*", pos):
                    depth, pos = depth + 1, pos + 2
                elif sql.startswith("*/", pos):
                    depth, pos = depth - 1, pos + 2
                else:
                    pos += 1
        elif kind == "dollar":
            end = sql.find(text, pos)
            end = len(sql) if end < 0 else end
            statements[-1].append(_Tok("string", sql[pos:end]))
            pos = end + len(text)
        elif kind == "semi":
            statements.append([])
            starts.append(pos)
        elif kind == "word":
            statements[-1].append(_Tok("word", text.upper()))
        elif kind == "qident":
            statements[-1].append(_Tok("ident", text[1:-1].replace('""', '"')))
        elif kind in ("string", "estring"):
            body = text[2:-1] if kind == "estring" else text[1:-1]
            statements[-1].append(_Tok("string", body.replace("''", "'")))
        elif kind not in ("ws", "line_comment"):
            statements[-1].append(_Tok(kind, text))
    ends = [start - 1 for start in starts[1:]] + [len(sql)]
    return [
        (toks, sql[start:end])
        for toks, start, end in zip(statements, starts, ends, strict=True)
        if toks
    ]


def _name(tok: _Tok | None) -> str | None:
    """A word or quoted identifier as PostgreSQL folds it."""
    if tok is None or tok.kind not in ("word", "ident"):
        return None
    return tok.value.lower() if tok.kind == "word" else tok.value


def _guc(tok: _Tok | None) -> str | None:
    """A setting's name: case-insensitive, quoted or not."""
    name = _name(tok)
    return name.lower() if name is not None else None


def _words(toks: list[_Tok]) -> list[str]:
    return [t.value for t in toks if t.kind == "word"]


def _set_kind(toks: list[_Tok]) -> str | None:
    """SET ...: which hazard, if any."""
    rest = toks[1:]
    first = _guc(rest[0]) if rest else None
    if first in ("local", "transaction", "constraints"):
        return None
    if first == "session":
        rest = rest[1:]
        first = _guc(rest[0]) if rest else None
        if first == "characteristics":
            return "setting"
    if first in ("role", "authorization"):
        return "role"
    if first == "names":
        return None
    if first == "time" and len(rest) > 1 and _name(rest[1]) == "zone":
        return None
    return None if first in TRACKED else "setting"


def _reset_kind(toks: list[_Tok]) -> str | None:
    target = _guc(toks[1]) if len(toks) > 1 else None
    if target in ("role", "session"):
        return "role"
    return None if target in TRACKED else "setting"


def _in_pg_temp(toks: list[_Tok], at: int) -> bool:
    """Whether the name at `at` is qualified by the session's temporary schema."""
    name = _name(toks[at]) if at < len(toks) else None
    return (
        name is not None
        and name.lower().startswith("pg_temp")
        and at + 1 < len(toks)
        and toks[at + 1].value == "."
    )


def _create_kind(toks: list[_Tok], in_transaction: bool) -> str | None:
    words = _words(toks)
    head = []
    for word in words[1:]:
        if word in ("TABLE", "VIEW", "SEQUENCE"):
            break
        head.append(word)
    else:
        return None
    at = (
        next(
            i
            for i, t in enumerate(toks)
            if t.kind == "word" and t.value in ("TABLE", "VIEW", "SEQUENCE")
        )
        + 1
    )
    while (
        at < len(toks)
        and toks[at].kind == "word"
        and toks[at].value in ("IF", "NOT", "EXISTS")
    ):
        at += 1
    if not ({"TEMP", "TEMPORARY"} & set(head) or _in_pg_temp(toks, at)):
        return None
    on_commit_drop = any(
        words[i : i + 3] == ["ON", "COMMIT", "DROP"] for i in range(len(words))
    )
    return None if on_commit_drop and in_transaction else "temp_table"


def _call_args(toks: list[_Tok], open_at: int) -> list[list[_Tok]]:
    """The arguments of the call whose '(' is at `open_at`."""
    args: list[list[_Tok]] = [[]]
    depth = 0
    for tok in toks[open_at:]:
        if tok.value == "(" and tok.kind == "punct":
            depth += 1
            if depth == 1:
                continue
        elif tok.value == ")" and tok.kind == "punct":
            depth -= 1
            if depth == 0:
                break
        elif tok.value == "," and tok.kind == "punct" and depth == 1:
            args.append([])
            continue
        args[-1].append(tok)
    return args


def _call_kinds(toks: list[_Tok]) -> list[str]:
    kinds = []
    for i, tok in enumerate(toks[:-1]):
        name = _name(tok)
        if name is None or toks[i + 1].value != "(" or toks[i + 1].kind != "punct":
            continue
        if name in ADVISORY_SESSION:
            kinds.append("advisory_lock")
        elif name in ("dblink_connect", "dblink_connect_u"):
            kinds.append("dblink")
        elif name == "set_config":
            args = _call_args(toks, i + 1)
            is_local = args[2] if len(args) == 3 else []
            local = len(is_local) == 1 and is_local[0].value.lower() in _TRUE
            setting = args[0]
            tracked = (
                len(setting) == 1
                and setting[0].kind == "string"
                and setting[0].value.lower() in TRACKED
            )
            if not (local or tracked):
                kinds.append("setting")
    return kinds


_PLPGSQL_CONTROL = frozenset({"BEGIN", "THEN", "ELSE", "LOOP"})


def _plpgsql_segments(toks: list[_Tok]) -> list[list[_Tok]]:
    """A PL/pgSQL statement split after its control words (`BEGIN SET x = 1`)."""
    segments: list[list[_Tok]] = [[]]
    for tok in toks:
        if tok.kind == "word" and tok.value in _PLPGSQL_CONTROL:
            segments.append([])
        else:
            segments[-1].append(tok)
    return [s for s in segments if s]


_SELECT_INTO_NOT_A_NAME = frozenset(
    {"FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "UNION", "WINDOW"}
)


def _select_into_temp(toks: list[_Tok]) -> bool:
    """SELECT ... INTO [LOCAL|GLOBAL] TEMP[ORARY] [UNLOGGED] [TABLE] name, or
    INTO pg_temp.name (`INTO temp FROM` makes an ordinary table called temp)."""
    for i, tok in enumerate(toks):
        if tok.kind != "word" or tok.value != "INTO":
            continue
        at = i + 1
        if _in_pg_temp(toks, at):
            return True
        words = []
        while (
            at < len(toks)
            and toks[at].kind == "word"
            and toks[at].value
            in ("LOCAL", "GLOBAL", "TEMP", "TEMPORARY", "UNLOGGED", "TABLE")
        ):
            words.append(toks[at].value)
            at += 1
        named = (
            at < len(toks)
            and toks[at].kind in ("word", "ident")
            and (toks[at].value not in _SELECT_INTO_NOT_A_NAME)
        )
        if {"TEMP", "TEMPORARY"} & set(words) and named:
            return True
    return False


def _strip_prefix(toks: list[_Tok]) -> list[_Tok]:
    """Drop what runs a statement without changing it: `(` and EXPLAIN [options]."""
    while toks and toks[0].kind == "punct" and toks[0].value == "(":
        toks = toks[1:]
    if toks and _name(toks[0]) == "explain":
        toks = toks[1:]
        if toks and toks[0].value == "(":
            depth = 0
            for i, tok in enumerate(toks):
                depth += (
                    {"(": 1, ")": -1}.get(tok.value, 0) if tok.kind == "punct" else 0
                )
                if depth == 0:
                    toks = toks[i + 1 :]
                    break
        while toks and _name(toks[0]) in ("analyze", "analyse", "verbose"):
            toks = toks[1:]
        return _strip_prefix(toks)
    return toks


def _statement_kinds(
    toks: list[_Tok], in_transaction: bool, *, plpgsql: bool = False
) -> list[str]:
    toks = _strip_prefix(toks)
    if not toks:
        return []
    words = _words(toks)
    first = _name(toks[0])
    kinds: list[str] = []
    if first == "set":
        kinds.append(_set_kind(toks) or "")
    elif first == "reset":
        kinds.append(_reset_kind(toks) or "")
    elif first in ("listen", "unlisten"):
        kinds.append("listen")
    elif (
        (first == "execute" and not plpgsql)
        or first == "deallocate"
        or (first == "prepare" and words[1:2] != ["TRANSACTION"])
    ):
        kinds.append("prepare")
    elif first == "declare" and any(
        words[i : i + 2] == ["WITH", "HOLD"] for i in range(len(words))
    ):
        kinds.append("hold_cursor")
    elif first == "create":
        kinds.append(_create_kind(toks, in_transaction) or "")
        if "FUNCTION" in words or "PROCEDURE" in words:
            return [k for k in kinds if k]  # the body runs only when called
    elif first == "load":
        kinds.append("load")
    elif first == "do":
        for body in (t for t in toks if t.kind == "string"):
            for inner, _ in _lex(body.value):
                for segment in _plpgsql_segments(inner):
                    kinds += _statement_kinds(segment, True, plpgsql=True)
    if first in ("select", "with") and not plpgsql and _select_into_temp(toks):
        kinds.append("temp_table")
    kinds += _call_kinds(toks)
    return [k for k in kinds if k]


_LITERAL = re.compile(r"'(?:[^']|'')*'|\$([A-Za-z_][A-Za-z0-9_]*)?\$.*?\$\1\$", re.S)


def _statement_text(sql: str, limit: int = 200) -> str:
    """The statement for a message: one line, string literals masked (a literal may
    hold a secret: SET app.api_key = '...')."""
    text = " ".join(_LITERAL.sub("'...'", sql).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def session_state_find(sql: str, *, in_transaction: bool = False) -> Finding | None:
    """The first session-state hazard in `sql`, or None when it leaves none.

    `in_transaction`: whether the caller runs inside a transaction it controls
    (Django's `atomic()`); a temporary table with ON COMMIT DROP is safe only there.
    """
    if not _worth_lexing(sql):
        return None
    for toks, text in _lex(sql):
        kinds = _statement_kinds(toks, in_transaction)
        if kinds:
            return Finding(HAZARDS[kinds[0]], _statement_text(text))
    return None
