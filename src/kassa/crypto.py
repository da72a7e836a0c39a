"""Secrets at rest (webhook signing secrets, rail passwords), encrypted with the server key.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with a key derived from the server secret by
HKDF, so the server secret itself never touches the data.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretBox:
    def __init__(self, server_secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kassa secrets at rest v1").derive(
            server_secret.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise ValueError("a stored secret cannot be decrypted: was KASSA_SECRET_KEY changed?") from None
