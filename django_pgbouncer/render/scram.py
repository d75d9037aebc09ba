"""SCRAM-SHA-256 verifiers in PostgreSQL's format (RFC 5803), made by scramp."""

from __future__ import annotations

import hmac
import re
from base64 import b64decode, b64encode

from scramp import ScramMechanism

__all__ = ["SCRAM_ITERATIONS", "scram_verifier", "scram_verifier_matches"]

SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)


_VERIFIER = re.compile(
    r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$"
)


def scram_verifier(
    password: str, *, iterations: int = SCRAM_ITERATIONS, salt: bytes | None = None
) -> str:
    """`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, salt random."""
    salt, stored_key, server_key, count = ScramMechanism(
        "SCRAM-SHA-256"
    ).make_auth_info(password, iteration_count=iterations, salt=salt)

    def b64(raw: bytes) -> str:
        return b64encode(raw).decode()

    return f"SCRAM-SHA-256${count}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def scram_verifier_matches(password: str, verifier: str) -> bool:
    """Whether `verifier` was made from `password` (whatever its salt)."""
    match = _VERIFIER.match(verifier)
    if not match:
        return False
    iterations, salt = int(match.group(1)), b64decode(match.group(2))
    again = scram_verifier(password, iterations=iterations, salt=salt)
    return hmac.compare_digest(again, verifier)
