"""Secrets at rest (webhook signing secrets, rail passwords), encrypted with the server key.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with a key derived from the server secret by
HKDF, so the server secret itself never touches the data. Retired server secrets
(`KASSA_OLD_SECRET_KEYS`) still open what they sealed (`MultiFernet`); `kassa secrets rotate`
re-seals everything with the current one so they can be dropped (docs/production.md).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

UNREADABLE = (
    "a stored secret cannot be decrypted with the server key nor any of KASSA_OLD_SECRET_KEYS: "
    "was the server key changed without keeping the previous one in KASSA_OLD_SECRET_KEYS?"
)


def _fernet(server_secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kassa secrets at rest v1").derive(
        server_secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    """Seals with the current server secret; opens with it or any of the retired ones."""

    def __init__(self, server_secret: str, old_secrets: Sequence[str] = ()) -> None:
        self._current = _fernet(server_secret)
        retired = [_fernet(s) for s in dict.fromkeys(old_secrets) if s != server_secret]
        self._fernet = MultiFernet([self._current, *retired])

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise ValueError(UNREADABLE) from None

    def reseal(self, token: str) -> str | None:
        """`token` sealed again with the current key, or None when it already is (ValueError when no
        key opens it). Fernet's timestamp is kept."""
        raw = token.encode("ascii")
        try:
            self._current.decrypt(raw)
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(raw).decode("ascii")
        except InvalidToken:
            raise ValueError(UNREADABLE) from None
