"""Session tokens: what a client keeps instead of the password."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    """32 random bytes, URL-safe: 43 characters."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the server stores. A plain SHA-256 is enough: a token has 256 random bits, so unlike
    a password there is nothing to guess from a leaked hash, and lookups stay one index probe.
    """
    return hashlib.sha256(token.encode()).hexdigest()
