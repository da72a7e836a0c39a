"""Public ids: a type prefix and 24 random base32 characters (120 bits), e.g. `ord_2f7k...`."""

from __future__ import annotations

import base64
import secrets


def new_id(prefix: str) -> str:
    raw = base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()
    return f"{prefix}_{raw}"


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """A credential: prefix plus url-safe random text. Shown once, stored hashed."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"
