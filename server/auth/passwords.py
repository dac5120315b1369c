"""Argon2id password hashing (argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()



@functools.cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist keeps timing alike for both cases.
    Made on first use, not at import: one Argon2id hash costs tens to hundreds of ms of CPU and
    64 MiB, which every CLI command would otherwise pay before doing anything."""
    return _hasher.hash("huizhen-no-such-user")


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """CPU-heavy (tens of ms): callers on the event loop run it in an executor."""
    try:
        ok = _hasher.verify(password_hash or _dummy_hash(), password)
        return ok and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
