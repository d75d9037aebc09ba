"""The kinds of session state that break behind a transaction pooler: why each
breaks, and what to do instead. The guard's messages and the metrics' labels."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HAZARDS", "Finding", "Hazard"]


@dataclass(frozen=True)
class Hazard:
    """A kind of session state: why it breaks, and what to do instead."""

    kind: str
    why: str
    instead: str


HAZARDS = {
    h.kind: h
    for h in (
        Hazard(
            "setting",
            "a session-level setting stays on the server connection: it is lost to "
            "your next transaction and leaks into other clients' queries",
            "SET LOCAL (or set_config(..., true)) inside transaction.atomic(), or "
            "ALTER ROLE ... SET for a lasting default",
        ),
        Hazard(
            "role",
            "the role stays on the server connection, so other clients' queries "
            "run with its privileges",
            "a separate login role: a DATABASES alias with its own USER",
        ),
        Hazard(
            "listen",
            "LISTEN registers the server connection, which serves other clients "
            "between your transactions: the notifications never reach you",
            "a direct connection (the 'direct' alias, DIRECT_DATABASE_URL)",
        ),
        Hazard(
            "advisory_lock",
            "a session-level advisory lock stays held by a server connection "
            "nobody owns: unlocking from your next transaction misses it, and "
            "everyone else waits for it forever",
            "pg_advisory_xact_lock() inside transaction.atomic() (released at "
            "commit), or the 'direct' alias",
        ),
        Hazard(
            "prepare",
            "a prepared statement lives on one server connection: the next "
            "transaction may run on another, where it does not exist",
            "plain statements (Django's default: no server_side_binding, "
            "prepare_threshold=None), or the 'direct' alias",
        ),
        Hazard(
            "hold_cursor",
            "a WITH HOLD cursor outlives its transaction on one server connection; "
            "the next FETCH may run on another",
            "a cursor without WITH HOLD inside transaction.atomic(), "
            "DISABLE_SERVER_SIDE_CURSORS, or the 'direct' alias",
        ),
        Hazard(
            "temp_table",
            "a temporary table outside a transaction, or without ON COMMIT DROP, "
            "lives in one server session: your next transaction may not see it, "
            "and another client may",
            "CREATE TEMP TABLE ... ON COMMIT DROP inside transaction.atomic()",
        ),
        Hazard(
            "temp_object",
            "a function, procedure, type or other object in pg_temp lives in one "
            "server session: your next transaction may not find it, and another "
            "client may call it",
            "the object in an ordinary schema, made by a migration, or the "
            "'direct' alias",
        ),
        Hazard(
            "sequence_state",
            "currval() and lastval() read the last nextval() of the server "
            "connection's session: outside a transaction that is another "
            "client's value, or none",
            "the value nextval() or INSERT ... RETURNING gave you, or currval() "
            "inside the same transaction.atomic() as its nextval()",
        ),
        Hazard(
            "random_seed",
            "setseed() seeds random() for the server connection: your next "
            "transaction may not get the sequence, and other clients' random() "
            "becomes predictable",
            "random values from Python (random.Random(seed)), or the 'direct' alias",
        ),
        Hazard(
            "dblink",
            "dblink_connect() leaves a named connection in one server session: your "
            "next transaction may not find it, and another client may use it",
            "dblink() with a connection string per call, or the 'direct' alias",
        ),
        Hazard(
            "load",
            "LOAD puts a library into one server session only",
            "session_preload_libraries or shared_preload_libraries in postgresql.conf",
        ),
    )
}


@dataclass(frozen=True)
class Finding:
    """One statement that leaves session state."""

    hazard: Hazard
    statement: str
