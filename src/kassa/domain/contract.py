"""An order's contract hash (GNU Taler's `h_contract`): what a customer shows to prove it knows
the order's terms.

SHA-512 over a canonical JSON object of the terms that never change once the order exists (sorted
keys, no spaces, ASCII with `\\u` escapes), written as Taler writes a hash: Crockford base32, 103
characters. The Kassa id, random and part of the terms, makes the hash unguessable from the rest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kassa.domain import crockford

HASH_SIZE = 64
HASH_LENGTH = crockford.encoded_length(HASH_SIZE)  # 103


def contract_hash(
    *,
    order_id: str,
    merchant: int,
    merchant_order_id: str | None,
    amount: int,
    currency: str,
    cart: Any,
    description: str | None,
    fulfillment_url: str | None,
    created_at: str,
) -> bytes:
    terms = {
        "id": order_id,
        "merchant": merchant,
        "order_id": merchant_order_id,
        "amount": amount,
        "currency": currency,
        "cart": cart,
        "description": description,
        "fulfillment_url": fulfillment_url,
        "created_at": created_at,
    }
    canonical = json.dumps(terms, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha512(canonical.encode("ascii")).digest()


def parse_hash(text: str) -> bytes | None:
    """A contract hash as text back to its 64 bytes; None when it is not one."""
    return crockford.decode(text, HASH_SIZE)
