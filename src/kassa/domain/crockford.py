"""Crockford base32 as GNU Taler writes binary values (hashes, keys) in text.

The bytes are read as one big-endian bit string, five bits per character from the alphabet
`0123456789ABCDEFGHJKMNPQRSTVWXYZ`, the last group padded with zero bits, no `=` padding: a
64-byte hash is 103 characters. Reading is lenient as Taler's is: any case, `O` for 0, `I` and
`L` for 1, `U` for V; the padding bits are ignored.
"""

from __future__ import annotations

import base64
import binascii

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base64.b32encode's alphabet, the same bit order
_TO_CROCKFORD = str.maketrans(_RFC4648, ALPHABET)
_FROM_CROCKFORD = str.maketrans(ALPHABET + "OILU", _RFC4648 + _RFC4648[0] + _RFC4648[1] * 2 + _RFC4648[27])
_READABLE = frozenset(ALPHABET + "OILU")


def encoded_length(size: int) -> int:
    """Characters for `size` bytes."""
    return -(-size * 8 // 5)


def encode(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").translate(_TO_CROCKFORD)


def decode(text: str, size: int) -> bytes | None:
    """The `size` bytes that `text` encodes, or None when it is not exactly that."""
    if len(text) != encoded_length(size) or not text.isascii():
        return None
    upper = text.upper()
    if not _READABLE.issuperset(upper):
        return None
    rfc = upper.translate(_FROM_CROCKFORD)
    try:
        data = base64.b32decode(rfc + "=" * (-len(rfc) % 8))
    except binascii.Error:
        return None
    return data if len(data) == size else None
