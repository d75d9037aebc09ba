"""Does a SQL string leave state in the PostgreSQL session? A pure classifier.

Behind PgBouncer in transaction mode each transaction may run on another server
connection, so whatever a statement leaves in the session (a setting, a role, a lock,
a LISTEN, a prepared statement, a held cursor, a temporary object, a sequence's
last value, random()'s seed) is lost to its author and inherited by strangers.

The statements are read by PostgreSQL's own parser (statements.py); the body of a
`DO` block by PL/pgSQL's (plpgsql.py), since it runs; the body of a `CREATE
FUNCTION` is not read, since it only runs when called. A prefilter spares the
parser the queries that cannot be a hazard, and a cache the ones Django repeats.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from .hazards import HAZARDS, Finding
from .statements import TRUE_WORDS, Candidate, sql_candidates

__all__ = ["session_state_find", "statement_candidates", "worth_parsing"]

# A statement that leaves session state names one of these words, in some case.
# Substring tests on the lower-cased text (about 0.1 us each) instead of a regex:
# "set" covers SET, RESET, set_config and setseed; "temp" covers TEMPORARY and
# pg_temp.
_TRIGGERS = (
    "set",
    "listen",
    "advisory",
    "prepare",
    "execute",
    "dealloc",
    "declare",
    "temp",
    "load",
    "dblink",
    "currval",
    "lastval",
)
_DO = re.compile(r"\bdo\b")
# Django's SQL is short and repeats; a long string is read each time, not kept.
_CACHED_LENGTH = 8192


def worth_parsing(sql: str) -> bool:
    """Whether `sql` may leave session state. False only where no escape, comment
    or non-ASCII character can hide a word from the substring tests: any of those
    sends the text to the parser."""
    if not sql.isascii() or "\\" in sql or "--" in sql or "/*" in sql:
        return True
    low = sql.lower()
    if "u&" in low or any(word in low for word in _TRIGGERS):
        return True
    return "do" in low and _DO.search(low) is not None


@functools.lru_cache(maxsize=1024)
def statement_candidates(sql: str) -> tuple[Candidate, ...]:
    """The candidate findings of `sql`, read once per distinct text."""
    return tuple(sql_candidates(sql)) if worth_parsing(sql) else ()


def _candidates(sql: str) -> tuple[Candidate, ...]:
    if len(sql) > _CACHED_LENGTH:
        return tuple(sql_candidates(sql)) if worth_parsing(sql) else ()
    return statement_candidates(sql)


def _bound_true(params: Any, key: int | str) -> bool:
    try:
        value = params[key]
    except (IndexError, KeyError, TypeError):
        return False
    return value is True or (isinstance(value, str) and value.lower() in TRUE_WORDS)


def _safe(
    candidate: Candidate, in_transaction: bool, param_sets: Sequence[Any]
) -> bool:
    if candidate.safe_in_transaction and in_transaction:
        return True
    key = candidate.safe_if_true
    return (
        key is not None
        and bool(param_sets)
        and all(_bound_true(params, key) for params in param_sets)
    )


def session_state_find(
    sql: str,
    *,
    in_transaction: bool = False,
    params: Any = None,
    many: bool = False,
) -> Finding | None:
    """The first session-state hazard in `sql`, or None when it leaves none.

    `in_transaction`: whether the caller runs inside a transaction it controls
    (Django's `atomic()`); a temporary table with ON COMMIT DROP is safe only there.
    `params`: the parameters bound to `sql`'s placeholders (one set per row when
    `many`), which decide `set_config(..., %s)`.
    """
    candidates = _candidates(sql)
    if not candidates:
        return None
    # executemany()'s rows may come from a generator: never consume it here.
    if many:
        param_sets = params if isinstance(params, Sequence) else []
    else:
        param_sets = [params] if params is not None else []
    for candidate in candidates:
        if not _safe(candidate, in_transaction, param_sets):
            return Finding(HAZARDS[candidate.kind], candidate.statement)
    return None
