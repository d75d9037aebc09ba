"""SCRAM-SHA-256 verifiers in PostgreSQL's format (RFC 5803), made by scramp."""

from __future__ import annotations

from base64 import b64encode

from scramp import ScramMechanism

__all__ = ["SCRAM_ITERATIONS", "scram_verifier"]

SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)


def scram_verifier(password: str, *, iterations: int = SCRAM_ITERATIONS) -> str:
    """`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, salt random."""
    salt, stored_key, server_key, count = ScramMechanism(
        "SCRAM-SHA-256"
    ).make_auth_info(password, iteration_count=iterations)

    def b64(raw: bytes) -> str:
        return b64encode(raw).decode()

    return f"SCRAM-SHA-256${count}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
