"""Addresses derived from public keys (services/addresses.py) on SQLite and PostgreSQL: an index is
handed out once, even to merchants sharing a key and to racing allocations; recycling gives back
only a merchant's own addresses of closed, never-paid orders whose monitoring window is over."""

from __future__ import annotations

import asyncio
import secrets

import httpx

from kassa.rails.base import Keychain
from kassa.services.addresses import AddressBook
from tests.support.server import KassaServer


def _keychain(key_id: str, recycle: bool = False) -> Keychain:
    async def covers(index: int) -> bool:
        return True

    return Keychain(key_id=key_id, derive=lambda i: f"addr-{key_id}-{i}", covers=covers, recycle=recycle)


def _merchant_pk(kassa: KassaServer, merchant_id: str) -> int:
    return kassa.call(kassa.runtime.merchants.get(merchant_id)).pk


def _book(kassa: KassaServer) -> AddressBook:
    return kassa.runtime.orders.addresses


def test_indexes_count_up_from_zero_and_name_their_address(
    kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    key = _keychain("k-" + secrets.token_hex(8))
    pk = _merchant_pk(kassa, merchant[0])
    got = [kassa.call(_book(kassa).allocate(key, "bitcoin", pk, f"ord_{i}")) for i in range(3)]
    assert [(a.index, a.address, a.uses) for a in got] == [(i, f"addr-{key.key_id}-{i}", 1) for i in range(3)]
    assert kassa.call(_book(kassa).next_index(key.key_id)) == 3
    assert kassa.call(_book(kassa).index_of(key.key_id, got[1].address)) == 1
    assert kassa.call(_book(kassa).index_of(key.key_id, "elsewhere")) is None


def test_racing_allocations_and_merchants_sharing_a_key_never_get_one_index_twice(
    kassa: KassaServer,
) -> None:
    key = _keychain("k-" + secrets.token_hex(8))
    shops = [_merchant_pk(kassa, kassa.new_merchant(f"Shop {n}")[0]) for n in range(2)]

    async def race() -> list[int]:
        jobs = [_book(kassa).allocate(key, "bitcoin", shops[n % 2], f"ord_race_{n}") for n in range(16)]
        return [a.index for a in await asyncio.gather(*jobs)]

    indexes = kassa.call(race())
    assert sorted(indexes) == list(range(16))
    usage = [kassa.call(_book(kassa).usage(key.key_id, pk)) for pk in shops]
    assert {u.next_index for u in usage} == {16}
    assert all(u.last_paid_index is None and u.gap == 16 for u in usage)


def _order(api: httpx.Client) -> str:
    response = api.post("/api/v1/orders", json={"amount": 1000, "currency": "EUR"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_recycling_takes_only_closed_unpaid_orders_past_their_monitoring_window(
    kassa: KassaServer, merchant: tuple[str, str], api: httpx.Client
) -> None:
    key = _keychain("k-" + secrets.token_hex(8), recycle=True)
    pk = _merchant_pk(kassa, merchant[0])
    other = _merchant_pk(kassa, kassa.new_merchant("Other shop")[0])
    canceled, paid, still_open = _order(api), _order(api), _order(api)
    first = {
        order: kassa.call(_book(kassa).allocate(key, "bitcoin", pk, order))
        for order in (canceled, paid, still_open)
    }
    assert api.post(f"/api/v1/orders/{canceled}/cancel").status_code == 200
    assert api.post("/api/v1/test/payments", json={"order": paid, "amount": 1000}).status_code == 201
    # Within the canceled order's monitoring window: a late payment may still come for it.
    fresh = kassa.call(_book(kassa).allocate(key, "bitcoin", pk, "ord_new_1"))
    assert (fresh.index, fresh.uses) == (3, 1)
    kassa.clock.advance(7 * 86400 + 60)
    # Another merchant sharing the key never gets this merchant's address.
    theirs = kassa.call(_book(kassa).allocate(key, "bitcoin", other, "ord_other"))
    assert (theirs.index, theirs.uses) == (4, 1)
    again = kassa.call(_book(kassa).allocate(key, "bitcoin", pk, "ord_new_2"))
    assert (again.index, again.address, again.uses) == (
        first[canceled].index,
        first[canceled].address,
        2,
    )
    # The paid and the open order keep theirs; the recycled one now belongs to ord_new_2.
    nxt = kassa.call(_book(kassa).allocate(key, "bitcoin", pk, "ord_new_3"))
    assert (nxt.index, nxt.uses) == (5, 1)
    usage = kassa.call(_book(kassa).usage(key.key_id, pk))
    assert usage.recycled == 1
    assert usage.last_paid_index == first[paid].index
    assert usage.gap == usage.next_index - first[paid].index - 1


def test_without_recycling_a_closed_orders_address_is_never_given_again(
    kassa: KassaServer, merchant: tuple[str, str], api: httpx.Client
) -> None:
    key = _keychain("k-" + secrets.token_hex(8))
    pk = _merchant_pk(kassa, merchant[0])
    order = _order(api)
    kassa.call(_book(kassa).allocate(key, "bitcoin", pk, order))
    assert api.post(f"/api/v1/orders/{order}/cancel").status_code == 200
    kassa.clock.advance(30 * 86400)
    assert kassa.call(_book(kassa).allocate(key, "bitcoin", pk, "ord_after")).index == 1
