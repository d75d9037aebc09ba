"""What each statement of a SQL string leaves in the session, read from
PostgreSQL's own parse tree (pglast, libpg_query: the server's grammar and
scanner). Comments, escapes (E'', U&), dollar quotes and quoted identifiers are
decoded as the server decodes them, so none can hide or fake a statement.

A `Candidate` is a finding that may still depend on how the SQL runs: inside a
transaction, or with a bound parameter that makes it safe (classify.py decides).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from pglast.parser import ParseError, parse_sql_json

from .mask import statement_mask
from .plpgsql import do_statements

__all__ = ["Candidate", "sql_candidates"]

# Parameters PgBouncer 1.18 tracks per client and sets on whichever server
# connection serves it (PgBouncer docs: client_encoding, DateStyle, TimeZone,
# standard_conforming_strings, application_name), so SET and RESET of them are safe.
# standard_conforming_strings only to on: off changes how every later string is
# read, which the guard's parser and Django assume on.
TRACKED = frozenset({"client_encoding", "datestyle", "timezone", "application_name"})
_CONFORMING = "standard_conforming_strings"
ADVISORY_SESSION = frozenset(
    {
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_advisory_unlock",
        "pg_advisory_unlock_shared",
        "pg_advisory_unlock_all",
    }
)
# A string PostgreSQL reads as boolean true. It takes prefixes too ('tr'): those
# read as not true here, a false alarm at worst, never a miss.
TRUE_WORDS = frozenset({"true", "t", "on", "yes", "y", "1"})
_CURSOR_OPT_HOLD = 0x0020  # parsenodes.h
_BEGIN = frozenset({"TRANS_STMT_BEGIN", "TRANS_STMT_START"})
_END = frozenset({"TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE"})
# Bodies that run later, when called or fired, not now.
_DEFERRED = frozenset({"CreateFunctionStmt", "ViewStmt", "RuleStmt"})
# psycopg's placeholders, as Django writes them (%s) and by name (%(name)s).
_PLACEHOLDER = re.compile(r"%%|%(?:\((\w+)\))?[sbt]")
_DEPTH = 32  # DO blocks that EXECUTE DO blocks: far past any real use


@dataclass(frozen=True)
class Candidate:
    """A statement that leaves session state, unless..."""

    kind: str
    statement: str = ""  # as the messages show it
    # ...it runs inside a transaction its caller controls (Django's atomic()).
    safe_in_transaction: bool = False
    # ...this bound parameter (an index, or a name for %(name)s) is true.
    safe_if_true: int | str | None = None


@dataclass
class _Context:
    keys: list[int | str]  # the parameter each $n stands for
    placeholders: list[str]  # the text each $n replaced
    in_block: bool = False  # after BEGIN in the same string
    in_do: bool = False
    depth: int = 0

    def statement(self, text: str) -> str:
        shown = statement_mask(text, placeholders=self.placeholders)
        return shown + " (in a DO block)" if self.in_do else shown


def _number(sql: str) -> tuple[str, list[int | str], list[str]]:
    """`sql` with psycopg's placeholders as $1, $2...: PostgreSQL's grammar reads
    those, and a parameter stays known for what it decides (set_config's is_local)."""
    keys: list[int | str] = []
    texts: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group() == "%%":
            return "%"
        name = match.group(1)
        keys.append(name if name else sum(isinstance(k, int) for k in keys))
        texts.append(match.group())
        return f"${len(keys)}"

    return _PLACEHOLDER.sub(replace, sql), keys, texts


def _literals(sql: str, literal: str) -> str:
    return _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else literal, sql)


def _readings(sql: str) -> Iterator[tuple[str, _Context]]:
    """`sql` as the parser should read it: with $n for the placeholders first;
    where the grammar takes no parameter there (SET x = %s, INCREMENT BY %s),
    psycopg sends a literal in its place: a string, or a number."""
    numbered, keys, texts = _number(sql)
    yield numbered, _Context(keys, texts)
    if keys:
        for literal in ("'?'", "0"):
            yield _literals(sql, literal), _Context([], [])


def _parse(sql: str) -> tuple[str, dict[str, Any], _Context] | None:
    """The text parsed, its tree, and what its parameters are; None when
    PostgreSQL's parser refuses it (then the server refuses it too, whole)."""
    for text, context in _readings(sql):
        try:
            tree = parse_sql_json(text)
        except ParseError:
            continue
        # Most statements hold no node a check looks at: skip decoding them.
        if not any(key in tree for key in _CHECKED):
            return text, {"stmts": []}, context
        return text, json.loads(tree), context
    return None


def sql_candidates(sql: str) -> list[Candidate]:
    """Every candidate finding of `sql`, statement by statement."""
    try:
        parsed = _parse(sql)
    except UnicodeEncodeError:
        return []  # a lone surrogate: psycopg cannot send it to the server either
    return [] if parsed is None else list(_tree_candidates(*parsed))


def _tree_candidates(
    text: str, tree: dict[str, Any], context: _Context
) -> Iterator[Candidate]:
    raw = text.encode()  # libpg_query's locations count bytes of UTF-8
    for entry in tree["stmts"]:
        start = entry.get("stmt_location", 0)
        length = entry.get("stmt_len", 0)
        node = entry["stmt"]
        kind = node.get("TransactionStmt", {}).get("kind")
        if kind in _BEGIN:
            context.in_block = True
        elif kind in _END and not node["TransactionStmt"].get("chain"):
            context.in_block = False
        found = _walk(node, context)
        if not found:
            continue
        # Shown only when found: masking scans the text again.
        one = raw[start : start + length if length else None].decode(errors="replace")
        statement = context.statement(one)
        for candidate in found:  # a DO block's are named by their own statement
            yield (
                candidate
                if candidate.statement
                else replace(candidate, statement=statement)
            )


Check = Callable[[dict[str, Any], _Context], Iterator[Candidate]]


def _walk(node: Any, context: _Context) -> list[Candidate]:
    """Every candidate in a parse tree, in the order of the text: hazards nest
    anywhere (a CTE, a subquery, EXPLAIN ANALYZE, CREATE TABLE AS), except in
    bodies that run later. A stack, not recursion: this runs on every new text."""
    found: list[Candidate] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
            continue
        children = []
        for key, value in item.items():
            check = _CHECKS.get(key)
            if check is not None:
                found += check(value, context)
            if key not in _DEFERRED and isinstance(value, dict | list):
                children.append(value)
        stack.extend(reversed(children))
    return found


def _names(items: list[dict[str, Any]] | None) -> list[str]:
    return [i["String"]["sval"] for i in items or () if "String" in i]


def _in_pg_temp(schema: str | None) -> bool:
    # pg_temp, or pg_temp_N written out; no other schema may start with pg_.
    return schema is not None and schema.startswith("pg_temp")


def _set(node: dict[str, Any], context: _Context) -> Iterator[Candidate]:
    if node.get("is_local"):
        return
    kind, name = node.get("kind"), str(node.get("name", "")).lower()
    if kind == "VAR_SET_MULTI" and name == "transaction":
        return
    if name in ("role", "session_authorization"):
        yield Candidate("role")
    elif kind == "VAR_RESET_ALL" or name not in TRACKED | {_CONFORMING}:
        yield Candidate("setting")
    elif name == _CONFORMING and kind == "VAR_SET_VALUE":
        (value,) = node.get("args", [{}])[:1] or [{}]
        if _truth(value, context) is not True:
            yield Candidate("setting")


def _relation(
    rel: dict[str, Any], on_commit: str | None, context: _Context
) -> Iterator[Candidate]:
    if rel.get("relpersistence") != "t" and not _in_pg_temp(rel.get("schemaname")):
        return
    drop = on_commit == "ONCOMMIT_DROP"
    if drop and (context.in_block or context.in_do):
        return
    yield Candidate("temp_table", safe_in_transaction=drop)


def _create(field: str, commit: str | None = None) -> Check:
    def check(node: dict[str, Any], context: _Context) -> Iterator[Candidate]:
        rel = node.get(field) or {}
        if "rel" in rel:  # an IntoClause
            commit_of = rel.get("onCommit")
            rel = rel["rel"]
        else:
            commit_of = node.get(commit) if commit else None
        yield from _relation(rel, commit_of, context)

    return check


def _temp_object(field: str) -> Check:
    def check(node: dict[str, Any], context: _Context) -> Iterator[Candidate]:
        value = node.get(field)
        if isinstance(value, dict):  # a RangeVar
            schema = value.get("schemaname")
        else:  # a qualified name: [schema, name]
            names = _names(value)
            schema = names[0] if len(names) > 1 else None
        if _in_pg_temp(schema):
            yield Candidate("temp_object")

    return check


def _always(kind: str) -> Check:
    def check(node: dict[str, Any], context: _Context) -> Iterator[Candidate]:
        yield Candidate(kind)

    return check


def _declare(node: dict[str, Any], context: _Context) -> Iterator[Candidate]:
    if int(node.get("options", 0)) & _CURSOR_OPT_HOLD:
        yield Candidate("hold_cursor")


def _do(node: dict[str, Any], context: _Context) -> Iterator[Candidate]:
    options = {
        d["DefElem"]["defname"]: d["DefElem"]
        .get("arg", {})
        .get("String", {})
        .get("sval")
        for d in node.get("args", [])
    }
    if str(options.get("language") or "plpgsql").lower() != "plpgsql":
        return  # another language's body cannot be read here
    if context.depth >= _DEPTH:
        yield Candidate("setting")  # deeper than anyone writes
        return
    for inner in do_statements(str(options.get("as") or "")):
        parsed = _parse(inner)
        if parsed is None:
            continue
        text, tree, _ = parsed
        nested = _Context([], [], in_do=True, depth=context.depth + 1)
        yield from _tree_candidates(text, tree, nested)


def _truth(node: dict[str, Any], context: _Context) -> bool | int | str | None:
    """A constant's truth (True, False), the key of the bound parameter it is,
    or None when it is neither."""
    while "TypeCast" in node:
        node = node["TypeCast"]["arg"]
    if "ParamRef" in node:
        number = int(node["ParamRef"].get("number", 0))
        keys = context.keys
        return keys[number - 1] if 0 < number <= len(keys) else None
    const = node.get("A_Const")
    if const is None:
        return None
    if "boolval" in const:
        return bool(const["boolval"].get("boolval"))
    value = const.get("sval", {}).get("sval", const.get("ival", {}).get("ival", 0))
    return str(value).lower() in TRUE_WORDS


def _call(node: dict[str, Any], context: _Context) -> Iterator[Candidate]:
    names = [n.lower() for n in _names(node.get("funcname"))]
    *schema, name = names or [""]
    if name in ("dblink_connect", "dblink_connect_u"):
        yield Candidate("dblink")
    if schema not in ([], ["pg_catalog"]):
        return  # a function of its own schema, not PostgreSQL's
    if name in ADVISORY_SESSION:
        yield Candidate("advisory_lock")
    elif name in ("currval", "lastval"):
        if context.in_block or context.in_do:
            return  # the same transaction as the nextval() before it
        yield Candidate("sequence_state", safe_in_transaction=True)
    elif name == "setseed":
        yield Candidate("random_seed")
    elif name == "set_config":
        yield from _set_config(node.get("args", []), context)


def _set_config(args: list[dict[str, Any]], context: _Context) -> Iterator[Candidate]:
    if len(args) != 3:
        return
    setting = args[0].get("A_Const", {}).get("sval", {}).get("sval")
    if isinstance(setting, str) and setting.lower() in TRACKED:
        return
    local = _truth(args[2], context)
    if local is True:
        return
    if local is False or local is None:
        yield Candidate("setting")
    else:
        yield Candidate("setting", safe_if_true=local)


_CHECKS: dict[str, Check] = {
    "VariableSetStmt": _set,
    "ListenStmt": _always("listen"),
    "PrepareStmt": _always("prepare"),
    "ExecuteStmt": _always("prepare"),
    "DeallocateStmt": _always("prepare"),
    "DeclareCursorStmt": _declare,
    "LoadStmt": _always("load"),
    "DoStmt": _do,
    "FuncCall": _call,
    "CreateStmt": _create("relation", "oncommit"),
    "CreateTableAsStmt": _create("into"),
    "SelectStmt": _create("intoClause"),
    "ViewStmt": _create("view"),
    "CreateSeqStmt": _create("sequence"),
    "CreateFunctionStmt": _temp_object("funcname"),
    "DefineStmt": _temp_object("defnames"),
    "CompositeTypeStmt": _temp_object("typevar"),
    "CreateEnumStmt": _temp_object("typeName"),
    "CreateRangeStmt": _temp_object("typeName"),
    "CreateDomainStmt": _temp_object("domainname"),
}
# How the keys of _CHECKS appear in libpg_query's JSON (a literal's quotes are
# escaped there, so no string in the SQL can pose as one).
_CHECKED = tuple(f'"{key}":' for key in _CHECKS)
