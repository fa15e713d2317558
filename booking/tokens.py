"""Secret tokens for links (sign-in, calendar feeds): random, and stored only as a digest."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    """Return a fresh URL-safe token with 256 bits of randomness."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
