"""Standard Webhooks signatures, through the ``standardwebhooks`` library.

A message is signed with every active secret of its endpoint: during secret rotation the
``webhook-signature`` header carries one ``v1,<base64>`` entry per secret, separated by spaces.
The library's ``Webhook.verify`` splits the header on spaces and accepts the message if any
``v1`` entry matches, so a receiver holding either the old or the new secret verifies it.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets as _secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

__all__ = ["SECRET_BYTES", "SECRET_PREFIX", "new_secret", "sign_headers", "validate_secret"]

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32
_MIN_BYTES, _MAX_BYTES = 24, 64  # the spec's range for secret keys


def new_secret() -> str:
    """A fresh ``whsec_…`` secret (32 random bytes, standard base64, as the library expects)."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def validate_secret(secret: str) -> None:
    """Raise ValueError unless ``secret`` is ``whsec_`` + strict base64 of 24–64 bytes.

    Stricter than the library, whose lenient base64 decoding silently drops invalid characters.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"webhook secret must start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("webhook secret is not valid base64") from None
    if not _MIN_BYTES <= len(key) <= _MAX_BYTES:
        raise ValueError(f"webhook secret must hold {_MIN_BYTES} to {_MAX_BYTES} bytes")


def sign_headers(secrets: Sequence[str], msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers for ``body``.

    ``timestamp`` must be timezone-aware; ``body`` must be UTF-8 (the library signs text).
    """
    if not secrets:
        raise ValueError("at least one secret is needed")
    if not msg_id or not msg_id.isascii() or not msg_id.isprintable() or " " in msg_id:
        raise ValueError("message id must be non-empty printable ASCII without spaces")
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("webhook body must be UTF-8") from None
    seconds = math.floor(timestamp.timestamp())
    # The library does timestamp.replace(tzinfo=UTC), which would shift a non-UTC time: pass UTC.
    at = datetime.fromtimestamp(seconds, UTC)
    signatures: list[str] = []
    for secret in dict.fromkeys(secrets):
        validate_secret(secret)
        signatures.append(Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=text))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": " ".join(signatures),
    }
