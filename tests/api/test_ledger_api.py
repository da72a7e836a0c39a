"""The ledger through the API and the service, on SQLite and PostgreSQL: final payments post once,
a payment undone is taken back, replays and races never post twice, sums up to 2**256 and beyond
stay exact, and the check finds what does not add up."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from kassa.db.tables import ledger_balances, ledger_entries
from kassa.domain.ledger import (
    Account,
    Posting,
    UnbalancedPosting,
    balances,
    payment_confirmed,
    payment_reversed,
)
from kassa.domain.money import MAX_AMOUNT
from kassa.services import ledger
from kassa.services.orders import Observation
from tests.support.server import KassaServer


def paid_order(api: httpx.Client, amount: int = 2500, confirmations: int = 1) -> dict[str, Any]:
    order = api.post("/api/v1/orders", json={"amount": amount, "currency": "USD"}).json()
    paid = api.post("/api/v1/test/payments", json={"order": order["id"], "amount": amount})
    assert paid.status_code == 201, paid.text
    for _ in range(confirmations):
        mined = api.post("/api/v1/test/blocks", json={"count": 1})
        assert mined.status_code == 200, mined.text
    return dict(api.get(f"/api/v1/orders/{order['id']}").json())


def merchant_pk(kassa: KassaServer, merchant_id: str) -> int:
    return kassa.call(kassa.runtime.merchants.get(merchant_id)).pk


def ledger_ok(kassa: KassaServer) -> None:
    broken = kassa.call(kassa.runtime.ledger.check())
    assert broken is None, broken


def test_a_final_payment_posts_once(kassa: KassaServer, api: httpx.Client) -> None:
    order = paid_order(api)
    assert order["status"] == "paid"
    (payment,) = order["payments"]
    test_money = api.get("/api/v1/balances", params={"test": "true"}).json()["data"]
    assert test_money == [
        {
            "object": "balance",
            "currency": "USD",
            "test": True,
            "available": 2500,
            "accounts": {
                "incoming": -2500,
                "balance": 2500,
                "refunds_payable": 0,
                "fees": 0,
                "payouts_in_flight": 0,
                "paid_out": 0,
                "network_fees": 0,
            },
        }
    ]
    assert api.get("/api/v1/balances").json()["data"] == []  # no live money
    entries = api.get("/api/v1/ledger/entries", params={"order": order["id"]}).json()["data"]
    assert {(e["account"], e["amount"]) for e in entries} == {("incoming", -2500), ("balance", 2500)}
    assert {e["key"] for e in entries} == {f"payment:{payment['id']}:confirmed"}
    # The watcher reports it again, deeper: nothing more is posted.
    order_pk = _order_pk(kassa, order["id"])
    kassa.call(kassa.runtime.orders.observe(order_pk, Observation("test", payment["reference"], 2500, 7)))
    assert len(api.get("/api/v1/ledger/entries", params={"order": order["id"]}).json()["data"]) == 2
    ledger_ok(kassa)


def _order_pk(kassa: KassaServer, order_id: str) -> int:
    from kassa.db.tables import orders

    async def run() -> int:
        async with kassa.runtime.db.read() as conn:
            return int((await conn.execute(select(orders.c.pk).where(orders.c.id == order_id))).scalar_one())

    return kassa.call(run())


def test_a_final_payment_undone_is_taken_back_once(kassa: KassaServer, api: httpx.Client) -> None:
    order = paid_order(api, 900)
    (payment,) = order["payments"]
    order_pk = _order_pk(kassa, order["id"])
    for _ in range(2):  # the reorg is reported twice
        kassa.call(
            kassa.runtime.orders.observe(order_pk, Observation("test", payment["reference"], 900, 0, True))
        )
    entries = api.get("/api/v1/ledger/entries", params={"order": order["id"]}).json()["data"]
    assert sorted(e["key"].rsplit(":", 1)[1] for e in entries) == [
        "confirmed",
        "confirmed",
        "reversed",
        "reversed",
    ]
    assert {e["kind"] for e in entries} == {"payment", "payment_reversal"}
    only_reversal = api.get(
        "/api/v1/ledger/entries", params={"order": order["id"], "kind": "payment_reversal"}
    )
    assert {e["amount"] for e in only_reversal.json()["data"]} == {900, -900}
    usd = api.get("/api/v1/balances", params={"test": "true"}).json()["data"][0]
    assert usd["available"] == 0 and usd["accounts"]["incoming"] == 0
    ledger_ok(kassa)


def test_a_payment_rejected_before_it_was_final_posts_nothing(kassa: KassaServer, api: httpx.Client) -> None:
    order = paid_order(api, 400, confirmations=0)
    (payment,) = order["payments"]
    kassa.call(
        kassa.runtime.orders.observe(
            _order_pk(kassa, order["id"]), Observation("test", payment["reference"], 400, 0, True)
        )
    )
    assert api.get("/api/v1/ledger/entries", params={"order": order["id"]}).json()["data"] == []


def test_entries_are_paginated_and_filtered(kassa: KassaServer, api: httpx.Client) -> None:
    for amount in (100, 200, 300):
        paid_order(api, amount)
    first = api.get("/api/v1/ledger/entries", params={"limit": 4}).json()
    assert len(first["data"]) == 4 and first["has_more"] is True
    rest = api.get(
        "/api/v1/ledger/entries", params={"limit": 4, "starting_after": first["data"][-1]["id"]}
    ).json()
    assert len(rest["data"]) == 2 and rest["has_more"] is False
    ids = [e["id"] for e in first["data"] + rest["data"]]
    assert len(set(ids)) == 6
    assert api.get("/api/v1/ledger/entries", params={"kind": "bogus"}).status_code == 400
    assert api.get("/api/v1/ledger/entries", params={"starting_after": "len_nope"}).status_code == 400
    assert api.get("/api/v1/ledger/entries", params={"limit": 0}).status_code == 400


def test_one_merchant_never_sees_anothers_ledger(kassa: KassaServer, api: httpx.Client) -> None:
    order = paid_order(api, 777)
    _other, key = kassa.new_merchant("Other ledger")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as other:
        assert other.get("/api/v1/balances", params={"test": "true"}).json()["data"] == []
        assert other.get("/api/v1/ledger/entries", params={"order": order["id"]}).json()["data"] == []
        mine = api.get("/api/v1/ledger/entries").json()["data"][0]["id"]
        assert other.get("/api/v1/ledger/entries", params={"starting_after": mine}).status_code == 400
    with httpx.Client(base_url=kassa.base_url) as anon:
        assert anon.get("/api/v1/balances").status_code == 401


async def _post(kassa: KassaServer, merchant: int, posting: Posting) -> bool:
    async with kassa.runtime.db.transaction() as tx:
        return await ledger.post(tx, merchant, posting, test=False, now=kassa.clock.now())


def test_races_and_sums_beyond_2_256(kassa: KassaServer, merchant: tuple[str, str]) -> None:
    pk = merchant_pk(kassa, merchant[0])
    biggest = payment_confirmed("pay_big", "ETH", MAX_AMOUNT - 1)

    async def race() -> list[bool]:
        return list(await asyncio.gather(*(_post(kassa, pk, biggest) for _ in range(8))))

    assert sorted(kassa.call(race())) == [False] * 7 + [True]
    for n in range(4):
        assert kassa.call(_post(kassa, pk, payment_confirmed(f"pay_big{n}", "ETH", MAX_AMOUNT - 1)))
    (eth,) = kassa.call(kassa.runtime.ledger.balances(pk, False))
    assert eth["available"] == 5 * (MAX_AMOUNT - 1) and eth["accounts"]["incoming"] == -5 * (MAX_AMOUNT - 1)
    ledger_ok(kassa)


postings = st.lists(
    st.builds(
        lambda n, currency, amount, rev: (payment_reversed if rev else payment_confirmed)(
            f"pay_{n}", currency, amount
        ),
        st.integers(0, 6),
        st.sampled_from(["XMR", "ETH"]),
        st.integers(min_value=1, max_value=MAX_AMOUNT - 1),
        st.booleans(),
    ),
    max_size=12,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=postings)
def test_any_sequence_with_replays_gives_the_domains_balances(
    kassa: KassaServer, events: list[Posting]
) -> None:
    merchant_id, _key = kassa.new_merchant("Ledger property")
    pk = merchant_pk(kassa, merchant_id)
    first: dict[str, Posting] = {}
    for posting in events + events[::2]:  # every other one replayed
        created = kassa.call(_post(kassa, pk, posting))
        assert created == (posting.key not in first)
        first.setdefault(posting.key, posting)
    expected = {(a.value, c): v for (a, c), v in balances(first.values()).items()}
    stored = {
        (account, row["currency"]): value
        for row in kassa.call(kassa.runtime.ledger.balances(pk, False))
        for account, value in row["accounts"].items()
        if value
    }
    assert stored == {k: v for k, v in expected.items() if v}
    ledger_ok(kassa)


def test_the_check_finds_a_broken_posting_and_a_wrong_balance(
    kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    pk = merchant_pk(kassa, merchant[0])
    assert kassa.call(_post(kassa, pk, payment_confirmed("pay_tamper", "XMR", 50)))

    async def tamper(table: Any, where: Any, **values: Any) -> Any:
        async with kassa.runtime.db.transaction() as tx:
            old = (await tx.conn.execute(select(table).where(where))).first()
            await tx.conn.execute(update(table).where(where).values(**values))
            return old

    entry = (ledger_entries.c.merchant_pk == pk) & (ledger_entries.c.account == Account.BALANCE.value)
    old = kassa.call(tamper(ledger_entries, entry, amount=49))
    try:
        broken = kassa.call(kassa.runtime.ledger.check())
        assert broken is not None and broken.posting == "payment:pay_tamper:confirmed"
        assert "do not sum to zero in XMR" in broken.message
    finally:
        kassa.call(tamper(ledger_entries, entry, amount=old.amount))
    ledger_ok(kassa)
    kept = (ledger_balances.c.merchant_pk == pk) & (ledger_balances.c.account == Account.BALANCE.value)
    old = kassa.call(tamper(ledger_balances, kept, balance=51))
    try:
        broken = kassa.call(kassa.runtime.ledger.check())
        assert broken is not None and broken.posting is None and "the entries sum to 50" in broken.message
    finally:
        kassa.call(tamper(ledger_balances, kept, balance=old.balance))
    ledger_ok(kassa)


@pytest.mark.parametrize("amount", [0, -5, MAX_AMOUNT])
def test_the_domain_refuses_what_the_store_never_sees(
    kassa: KassaServer, merchant: tuple[str, str], amount: int
) -> None:
    pk = merchant_pk(kassa, merchant[0])
    with pytest.raises(UnbalancedPosting):
        kassa.call(_post(kassa, pk, payment_confirmed("pay_bad", "XMR", amount)))
    assert kassa.call(kassa.runtime.ledger.balances(pk, False)) == []
