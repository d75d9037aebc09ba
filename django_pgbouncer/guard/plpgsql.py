"""The SQL a `DO` block runs, read with PL/pgSQL's own parser (pglast's
parse_plpgsql, libpg_query): every statement and expression of the body, and the
constant string of an `EXECUTE`, which runs as SQL too. SQL built at run time
(`EXECUTE format(...)`) cannot be known before it runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pglast import parse_plpgsql
from pglast.parser import ParseError, parse_sql_json, scan

__all__ = ["do_statements"]

# Where the fallback reading cuts a body: PL/pgSQL's control words.
_CONTROL = frozenset(
    {
        "declare", "begin", "end", "if", "then", "elsif", "else", "case", "when",
        "loop", "while", "for", "foreach", "in", "exception", "return", "query",
        "open", "using", "into", "strict",
    }
)  # fmt: skip

# Statements whose query is a string run as SQL (EXECUTE, FOR ... IN EXECUTE,
# OPEN ... FOR EXECUTE, RETURN QUERY EXECUTE).
_DYNAMIC = frozenset(
    {
        ("PLpgSQL_stmt_dynexecute", "query"),
        ("PLpgSQL_stmt_dynfors", "query"),
        ("PLpgSQL_stmt_open", "dynquery"),
        ("PLpgSQL_stmt_return_query", "dynquery"),
    }
)
# PLpgSQL_expr.parseMode (RawParseMode in parser.h): 0 a whole statement, 2 an
# expression, 3 to 5 an assignment `target := expression`.
_STATEMENT, _EXPRESSION = 0, 2


def _exprs(node: Any, dynamic: bool = False) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every PLpgSQL_expr of the tree, and whether it is a string run as SQL."""
    if isinstance(node, list):
        for item in node:
            yield from _exprs(item, dynamic)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "PLpgSQL_expr":
                yield value, dynamic
            elif key.startswith("PLpgSQL_") and isinstance(value, dict):
                for field, inner in value.items():
                    yield from _exprs(inner, (key, field) in _DYNAMIC)
            else:
                yield from _exprs(value)


def _assigned(text: str) -> str:
    """The expression of `target := expression` (or `target = expression`)."""
    for token in scan(text):
        if token.name in ("COLON_EQUALS", "ASCII_61"):
            return text[token.end + 1 :]
    return text


def _constant(expression: str) -> str | None:
    """The value of an expression that is one string constant, casts allowed."""
    try:
        tree = json.loads(parse_sql_json(f"SELECT {expression}"))
        (statement,) = tree["stmts"]
        (target,) = statement["stmt"]["SelectStmt"]["targetList"]
        value = target["ResTarget"]["val"]
    except (ParseError, KeyError, ValueError):
        return None
    return _string(value)


def _string(node: dict[str, Any]) -> str | None:
    """A string constant, cast or not, or constants joined by ||."""
    while "TypeCast" in node:
        node = node["TypeCast"]["arg"]
    if "A_Expr" in node:
        expr = node["A_Expr"]
        names = [n.get("String", {}).get("sval") for n in expr.get("name", [])]
        if names != ["||"]:
            return None
        left, right = _string(expr.get("lexpr", {})), _string(expr.get("rexpr", {}))
        return None if left is None or right is None else left + right
    text = node.get("A_Const", {}).get("sval", {}).get("sval")
    return text if isinstance(text, str) else None


def do_statements(body: str) -> list[str]:
    """The SQL statements a `DO` body in PL/pgSQL runs, as far as they are known
    before it runs. More than it runs where PL/pgSQL's parser cannot read it."""
    quoted = "'" + body.replace("'", "''") + "'"
    try:
        tree = parse_plpgsql(f"DO {quoted}")
    except ParseError:
        # libpg_query's PL/pgSQL has no catalog: it refuses some bodies the
        # server runs (an array of a table's type). Read those piece by piece.
        return _pieces(body)
    out = []
    for expr, dynamic in _exprs(tree):
        text = str(expr.get("query", ""))
        mode = expr.get("parseMode", _STATEMENT)
        if dynamic:
            constant = _constant(text)
            if constant is not None:
                out.append(constant)
        elif mode == _STATEMENT:
            out.append(text)
        elif mode == _EXPRESSION:
            out.append(f"SELECT {text}")
        else:
            try:
                out.append(f"SELECT {_assigned(text)}")
            except ParseError:
                continue
    return out


def _piece(text: str) -> str | None:
    """One piece of a body as SQL the parser may read."""
    words = text.split(maxsplit=1)
    first = words[0].lower() if words else ""
    if first == "perform":
        return f"SELECT {words[1]}" if len(words) > 1 else None
    if first == "execute":
        return _constant(words[1]) if len(words) > 1 else None
    if ":=" in text:
        return f"SELECT {text.split(':=', 1)[1]}"
    return text


def _pieces(body: str) -> list[str]:
    """A body cut at every `;` and control word (by PostgreSQL's scanner, so
    literals and comments stay whole); each piece as a statement, or else as an
    expression (`IF pg_try_advisory_lock(1) THEN`)."""
    try:
        tokens = scan(body)
    except ParseError:
        return []
    out, start = [], 0
    for token in [*tokens, None]:
        word = "" if token is None else body[token.start : token.end + 1]
        if token is not None and word != ";" and word.lower() not in _CONTROL:
            continue
        piece = _piece(body[start : token.start if token else None].strip())
        start = token.end + 1 if token else len(body)
        if piece:
            out += [piece, f"SELECT {piece}"]
    return out
