"""API tokens: random, shown once, stored only as an Argon2id hash (argon2-cffi).

A token is ``dzr_<key id>_<secret>``. The key id (public, random) finds the user's row without trying every
hash; the secret (256 random bits) is verified against the Argon2id hash. Parameters are OWASP's minimum
for Argon2id (19 MiB, t=2, p=1): the secret is random, so the slow hash protects a stolen database,
it does not have to make a weak password strong.
"""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

PREFIX = "dzr"
TOKEN_RE = re.compile(r"^dzr_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def new_token() -> tuple[str, str]:
    """(key id, token)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    """The key id of a well-formed token, else None (nothing is hashed for a malformed token)."""
    m = TOKEN_RE.match(token)
    return m.group(1) if m else None


def hash_token(token: str) -> str:
    return HASHER.hash(token)


def verify_token(stored_hash: str, token: str) -> bool:
    try:
        return HASHER.verify(stored_hash, token)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
