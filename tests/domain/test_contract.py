"""Taler's Crockford base32 and the contract hash: Taler's own test vector, and properties."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from kassa.domain import crockford
from kassa.domain.contract import HASH_LENGTH, contract_hash, parse_hash

# GNU Taler's test vector (taler-exchange-tvg "hash code", as in taler-util's crypto tests):
# the Crockford text of SHA-512 over the bytes that TVG_INPUT encodes.
TVG_INPUT = "91JPRV3F5GG4EKJN41A62V35E8"
TVG_HASH = (
    "CW96WR74JS8T53EC8GKSGD49QKH4ZNFTZXDAWMMV5GJ1E4BM6B8GPN5NVHDJ8ZVXNCW7Q4WBYCV61HCA3PZC2YJD850DT29RHHN7ESR"
)
TERMS = {
    "order_id": "ord_x",
    "merchant": 7,
    "merchant_order_id": "shop-42",
    "amount": 2**255,
    "currency": "ETH",
    "cart": [{"name": "Tee ü", "price": 2**255, "quantity": 1, "image": None}],
    "description": "\ud800 lone surrogate",
    "fulfillment_url": "https://shop.example/a",
    "created_at": "2026-05-01T12:00:00.123456Z",
}


def bit_by_bit(data: bytes) -> str:
    """The encoding spelled out: the bytes as one big-endian number, zero bits to a multiple of 5."""
    bits = len(data) * 8
    pad = -bits % 5
    number = int.from_bytes(data, "big") << pad
    count = (bits + pad) // 5
    return "".join(crockford.ALPHABET[(number >> (5 * (count - 1 - i))) & 31] for i in range(count))


def test_taler_s_test_vector() -> None:
    data = crockford.decode(TVG_INPUT, 16)
    assert data is not None
    assert crockford.encode(hashlib.sha512(data).digest()) == TVG_HASH
    assert parse_hash(TVG_HASH) == hashlib.sha512(data).digest()


@given(st.binary(max_size=80))
def test_encoding_is_taler_s(data: bytes) -> None:
    text = crockford.encode(data)
    assert text == bit_by_bit(data)
    assert len(text) == crockford.encoded_length(len(data))
    assert crockford.decode(text, len(data)) == data
    assert crockford.decode(text.lower(), len(data)) == data


def test_reading_is_lenient_as_taler_s() -> None:
    canonical = parse_hash(TVG_HASH)
    assert parse_hash(TVG_HASH.lower().replace("1", "l").replace("0", "o")) == canonical
    assert parse_hash(TVG_HASH.replace("1", "I")) == canonical
    for bad in ("", TVG_HASH[:-1], TVG_HASH + "0", TVG_HASH[:-1] + "*", TVG_HASH[:-1] + "é", " " * 103):
        assert parse_hash(bad) is None, bad


def test_the_contract_hash() -> None:
    h = contract_hash(**TERMS)
    assert len(h) == 64 and len(crockford.encode(h)) == HASH_LENGTH == 103
    assert contract_hash(**TERMS) == h
    for name, other in (("order_id", "ord_y"), ("merchant", 8), ("amount", 1), ("fulfillment_url", None)):
        assert contract_hash(**{**TERMS, name: other}) != h
