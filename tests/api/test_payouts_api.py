"""Payouts through the API on SQLite and PostgreSQL, on the test rail (whose wallet spends at once):
manual payouts within the balance, the operator's fee, the minimum, concurrent requests over the
balance (only one wins), the immediate and daily policies, the manual sign-it-yourself flow, a payout
resumed after a crash, bad input (nothing posted), scopes and merchants kept apart."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from kassa.services.payouts import _request as payout_request
from tests.api.test_ledger_api import ledger_ok, merchant_pk, paid_order
from tests.support.server import KassaServer

WALLET = "test:merchant-wallet"


def accounts(api: httpx.Client, currency: str = "USD") -> dict[str, int]:
    for balance in api.get("/api/v1/balances", params={"test": "true"}).json()["data"]:
        if balance["currency"] == currency:
            return dict(balance["accounts"])
    return {}


def set_wallet(api: httpx.Client, **settings: Any) -> None:
    response = api.put("/api/v1/payment-methods/test", json={"payout_address": WALLET, **settings})
    assert response.status_code == 200, response.text


def payout(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/api/v1/payouts", json={"rail": "test", "currency": "USD", **body})


def event_types(api: httpx.Client, payout_id: str) -> list[str]:
    events = api.get("/api/v1/events", params={"limit": 100}).json()["data"]
    return [e["type"] for e in reversed(events) if e["data"].get("id") == payout_id]


def test_a_manual_payout_pays_the_balance_out(kassa: KassaServer, api: httpx.Client) -> None:
    paid_order(api, 2500)
    set_wallet(api)
    response = payout(api)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["amount"], body["fee"], body["received"], body["network_fee"]) == (
        "confirmed",
        2500,
        0,
        2500,
        0,
    )
    assert (body["origin"], body["destination"], body["reference"]) == (
        "manual",
        WALLET,
        f"test-sent:{body['id']}",
    )
    assert body["sent_at"] and body["confirmed_at"] and body["unsigned_tx"] is None
    assert accounts(api) == {
        "incoming": -2500,
        "balance": 0,
        "refunds_payable": 0,
        "fees": 0,
        "payouts_in_flight": 0,
        "paid_out": 2500,
        "network_fees": 0,
    }
    assert event_types(api, body["id"]) == ["payout.created", "payout.sent", "payout.confirmed"]
    assert api.get(f"/api/v1/payouts/{body['id']}").json() == body
    listed = api.get("/api/v1/payouts").json()
    assert [p["id"] for p in listed["data"]] == [body["id"]] and listed["has_more"] is False
    assert api.get("/api/v1/payouts", params={"status": "sending"}).json()["data"] == []
    nothing_left = payout(api)
    assert nothing_left.status_code == 400
    assert "nothing to pay out: the balance is 0" in nothing_left.json()["error"]["message"]
    ledger_ok(kassa)


def test_part_of_the_balance_to_another_address(kassa: KassaServer, api: httpx.Client) -> None:
    paid_order(api, 3000)
    response = payout(api, amount=1000, destination="test:cold-storage")
    assert response.status_code == 201, response.text
    assert (response.json()["destination"], response.json()["amount"]) == ("test:cold-storage", 1000)
    assert accounts(api)["balance"] == 2000 and accounts(api)["paid_out"] == 1000
    ledger_ok(kassa)


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"amount": 0}, "amount", ""),
        ({"amount": -5}, "amount", ""),
        ({"amount": "100"}, "amount", ""),
        ({"amount": 2**256}, "amount", ""),
        ({"amount": 2501}, "amount", "at most 2500"),
        ({"currency": "EUR"}, "amount", "nothing to pay out"),
        ({"currency": "EUR", "amount": 5}, "amount", "nothing to pay out"),
        ({"destination": "not-a-test-address"}, "destination", "test:<anything>"),
        ({"destination": "test:" + "x" * 300}, "destination", "test:<anything>"),
        ({"rail": "nope"}, "rail", "not configured"),
        ({"rail": "monero", "currency": None}, "rail", "not configured"),
        ({"unexpected": 1}, "unexpected", ""),
    ],
)
def test_bad_payouts_are_refused_and_post_nothing(
    kassa: KassaServer, api: httpx.Client, body: dict[str, Any], param: str, words: str
) -> None:
    paid_order(api, 2500)
    set_wallet(api)
    before = accounts(api)
    response = payout(api, **body)
    assert response.status_code in (400, 404, 422), response.text
    error = response.json()["error"]
    assert param in (error.get("param") or ""), error
    assert words in error["message"]
    assert accounts(api) == before
    assert api.get("/api/v1/payouts").json()["data"] == []


def test_no_destination_and_the_minimum(kassa: KassaServer, api: httpx.Client) -> None:
    paid_order(api, 2500)
    nowhere = payout(api)
    assert nowhere.status_code == 400 and nowhere.json()["error"]["param"] == "destination"
    assert "payout_address" in nowhere.json()["error"]["message"]
    bad = api.put("/api/v1/payment-methods/test", json={"payout_address": "elsewhere"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "settings.payout_address"
    set_wallet(api, payout_minimum=5000)
    small = payout(api)
    assert small.status_code == 400 and "minimum payout is 5000" in small.json()["error"]["message"]
    paid_order(api, 2500)
    assert payout(api).json()["amount"] == 5000
    ledger_ok(kassa)


def test_the_operator_fee_goes_to_the_fees_account(kassa: KassaServer, merchant: tuple[str, str]) -> None:
    operator = kassa.sibling(payout_fee_bps=150).start()  # 1.5 %
    try:
        with httpx.Client(
            base_url=operator.base_url, headers={"Authorization": f"Bearer {merchant[1]}"}, timeout=30
        ) as api:
            paid_order(api, 10_001)
            set_wallet(api)
            body = payout(api).json()
            assert (body["amount"], body["fee"], body["received"], body["status"]) == (
                10_001,
                150,
                9851,
                "confirmed",
            )
            assert accounts(api) == {
                "incoming": -10_001,
                "balance": 0,
                "refunds_payable": 0,
                "fees": 150,
                "payouts_in_flight": 0,
                "paid_out": 9851,
                "network_fees": 0,
            }
            ledger_ok(operator)
    finally:
        operator.stop()


def test_concurrent_payouts_over_the_balance_only_one_wins(kassa: KassaServer, api: httpx.Client) -> None:
    paid_order(api, 2500)
    set_wallet(api)
    results: list[int] = []
    start = threading.Barrier(4)

    def ask() -> None:
        with httpx.Client(base_url=str(api.base_url), headers=dict(api.headers), timeout=30) as own:
            start.wait()
            results.append(payout(own, amount=2000).status_code)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201, 400, 400, 400]
    assert accounts(api)["balance"] == 500 and accounts(api)["paid_out"] == 2000
    ledger_ok(kassa)


def test_an_idempotent_payout_is_made_once(kassa: KassaServer, api: httpx.Client) -> None:
    paid_order(api, 2500)
    set_wallet(api)
    headers = {"Idempotency-Key": "payout-once"}
    first = api.post(
        "/api/v1/payouts", json={"rail": "test", "currency": "USD", "amount": 1000}, headers=headers
    )
    again = api.post(
        "/api/v1/payouts", json={"rail": "test", "currency": "USD", "amount": 1000}, headers=headers
    )
    assert first.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert accounts(api)["paid_out"] == 1000


def test_the_immediate_policy_pays_each_final_payment_out(kassa: KassaServer, api: httpx.Client) -> None:
    set_wallet(api)
    refused = api.patch("/api/v1/merchant", json={"withdrawal_policy": "bogus"})
    assert refused.status_code == 400
    assert api.patch("/api/v1/merchant", json={"withdrawal_policy": "immediate"}).status_code == 200
    mine = merchant_pk(kassa, api.get("/api/v1/merchant").json()["id"])
    paid_order(api, 1200)
    kassa.call(kassa.runtime.payouts.run_due())
    paid_order(api, 800)
    kassa.call(kassa.runtime.payouts.run_due())
    kassa.call(kassa.runtime.payouts.run_due())  # nothing new: nothing more
    made = [p for p in api.get("/api/v1/payouts").json()["data"]]
    assert [(p["amount"], p["origin"], p["status"]) for p in made] == [
        (800, "immediate", "confirmed"),
        (1200, "immediate", "confirmed"),
    ]
    assert accounts(api)["balance"] == 0 and accounts(api)["paid_out"] == 2000
    rows, _ = kassa.call(kassa.runtime.payouts.page(mine, 10, None))
    assert len(rows) == 2
    assert api.patch("/api/v1/merchant", json={"withdrawal_policy": "manual"}).status_code == 200
    ledger_ok(kassa)


def test_the_daily_policy_batches_a_day_into_one_payout(kassa: KassaServer, api: httpx.Client) -> None:
    set_wallet(api, payout_minimum=100)
    if kassa.clock.now().hour == 23:
        kassa.clock.advance(3600)
    hour = kassa.clock.now().hour + 1
    settings = {"withdrawal_policy": "daily", "payout_hour": hour}
    assert api.patch("/api/v1/merchant", json=settings).json()["payout_hour"] == hour
    assert api.patch("/api/v1/merchant", json={"payout_hour": 24}).status_code == 400
    for amount in (1000, 2000, 3000):
        paid_order(api, amount)
    kassa.call(kassa.runtime.payouts.run_due())
    assert api.get("/api/v1/payouts").json()["data"] == []  # before the merchant's hour
    kassa.clock.advance(3600)
    kassa.call(kassa.runtime.payouts.run_due())
    paid_order(api, 4000)
    kassa.call(kassa.runtime.payouts.run_due())  # the same day: no second payout
    (daily,) = api.get("/api/v1/payouts").json()["data"]
    assert (daily["amount"], daily["origin"], daily["status"]) == (6000, "daily", "confirmed")
    assert daily["period"] == kassa.clock.now().date().isoformat()
    assert accounts(api)["balance"] == 4000
    kassa.clock.advance(86400)
    kassa.call(kassa.runtime.payouts.run_due())
    assert [p["amount"] for p in api.get("/api/v1/payouts").json()["data"]] == [4000, 6000]
    assert api.patch("/api/v1/merchant", json={"withdrawal_policy": "manual"}).status_code == 200
    ledger_ok(kassa)


def test_an_automatic_policy_needs_somewhere_to_pay(kassa: KassaServer, api: httpx.Client) -> None:
    refused = api.patch("/api/v1/merchant", json={"withdrawal_policy": "immediate"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "withdrawal_policy"
    assert "payout_address" in refused.json()["error"]["message"]


def test_a_payout_signed_by_the_merchants_own_wallet(kassa: KassaServer, api: httpx.Client) -> None:
    paid_order(api, 2500)
    set_wallet(api)
    created = payout(api, amount=1500, unsigned=True)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "awaiting_signature" and body["unsigned_tx"].startswith("test-unsigned:")
    assert accounts(api)["payouts_in_flight"] == 1500 and accounts(api)["balance"] == 1000
    wrong = api.post(f"/api/v1/payouts/{body['id']}/signed", json={"signed_tx": "forged"})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "signed_tx"
    signed = {"signed_tx": "signed:" + body["unsigned_tx"]}
    done = api.post(f"/api/v1/payouts/{body['id']}/signed", json=signed)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["unsigned_tx"]) == ("confirmed", None)
    again = api.post(f"/api/v1/payouts/{body['id']}/signed", json=signed)
    assert again.status_code == 200 and again.json()["status"] == "confirmed"
    assert accounts(api)["paid_out"] == 1500
    late_cancel = api.post(f"/api/v1/payouts/{body['id']}/cancel")
    assert late_cancel.status_code == 409 and late_cancel.json()["error"]["code"] == "payout_state"
    second = payout(api, unsigned=True).json()
    canceled = api.post(f"/api/v1/payouts/{second['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert accounts(api)["balance"] == 1000 and accounts(api)["payouts_in_flight"] == 0
    gone = api.post(f"/api/v1/payouts/{second['id']}/signed", json={"signed_tx": "signed:x"})
    assert gone.status_code == 409
    assert event_types(api, second["id"]) == ["payout.created", "payout.canceled"]
    ledger_ok(kassa)


def test_a_payout_left_sending_by_a_crash_is_not_sent_twice(kassa: KassaServer, api: httpx.Client) -> None:
    """A worker died after broadcasting but before recording: the resumed payout asks the wallet,
    which knows the transaction, and records it without broadcasting a second one."""
    paid_order(api, 2500)
    set_wallet(api)
    mine = merchant_pk(kassa, api.get("/api/v1/merchant").json()["id"])
    service = kassa.runtime.payouts
    config, rail = kassa.call(service._rail(mine, "test"))
    from kassa.domain.payouts import PayoutOrigin

    made = kassa.call(
        service._reserve(config, rail, "USD", 2500, WALLET, PayoutOrigin.MANUAL, None, strict=True)
    )
    assert made is not None
    relayed: list[str] = []
    original = type(rail).relay

    async def counting(self: Any, config: Any, prepared: Any) -> None:
        relayed.append(prepared.reference)
        await original(self, config, prepared)

    type(rail).relay = counting  # type: ignore[method-assign]
    try:
        # The crashed worker built and recorded the transaction, then broadcast it.
        prepared = kassa.call(rail.prepare_send(config, payout_request(made)))
        from kassa.services.sending import dump

        kassa.call(_store(kassa, made["id"], dump(prepared)))
        assert api.get(f"/api/v1/payouts/{made['id']}").json()["status"] == "sending"
        assert kassa.call(service.resume()) == 0  # not before it was left alone a while
        kassa.clock.advance(60)
        assert kassa.call(service.resume()) == 1
        assert relayed == []  # the wallet knew it: nothing broadcast again
    finally:
        type(rail).relay = original  # type: ignore[method-assign]
    assert api.get(f"/api/v1/payouts/{made['id']}").json()["status"] == "confirmed"
    assert accounts(api)["paid_out"] == 2500
    ledger_ok(kassa)


async def _store(kassa: KassaServer, payout_id: str, prepared: str) -> None:
    from sqlalchemy import update

    from kassa.db.tables import payouts

    async with kassa.runtime.db.transaction() as tx:
        await tx.conn.execute(update(payouts).where(payouts.c.id == payout_id).values(prepared=prepared))


def test_scopes_and_merchants_apart(kassa: KassaServer, api: httpx.Client) -> None:
    paid_order(api, 2500)
    set_wallet(api)
    made = payout(api, amount=100).json()
    merchant_id = api.get("/api/v1/merchant").json()["id"]
    with kassa.admin() as admin:
        key = admin.post(f"/api/v1/merchants/{merchant_id}/keys", json={"scopes": ["orders:write"]}).json()
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key['secret']}"}) as weak:
        assert payout(weak).status_code == 403
        assert weak.get("/api/v1/payouts").status_code == 403
    _other, other_key = kassa.new_merchant()
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {other_key}"}) as other:
        assert other.get(f"/api/v1/payouts/{made['id']}").status_code == 404
        assert other.get("/api/v1/payouts").json()["data"] == []
        assert other.post(f"/api/v1/payouts/{made['id']}/cancel").status_code == 404
