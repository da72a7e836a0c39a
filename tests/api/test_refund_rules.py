"""Refunds Kassa makes by rule (SQLite and PostgreSQL): an order that expired underpaid, late money the
merchant does not accept, the excess of an overpayment; made once, in the order change's transaction,
waiting for approval or sent by the worker as the merchant's `refund_policy` says."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.test_ledger_api import ledger_ok
from tests.support.server import KassaServer


@pytest.fixture
def clock_back(kassa: KassaServer) -> Iterator[None]:
    before = kassa.clock.now()
    yield
    kassa.clock.advance((before - kassa.clock.now()).total_seconds())


def order(api: httpx.Client, amount: int = 1000) -> dict[str, Any]:
    created = api.post("/api/v1/orders", json={"amount": amount, "currency": "USD", "expires_in": 600})
    assert created.status_code == 201, created.text
    return dict(created.json())


def pay(api: httpx.Client, order_id: str, amount: int) -> None:
    assert api.post("/api/v1/test/payments", json={"order": order_id, "amount": amount}).status_code == 201
    assert api.post("/api/v1/test/blocks", json={"count": 1}).status_code == 200


def refunds_of(api: httpx.Client, order_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/api/v1/orders/{order_id}/refunds").json()["data"])


def events_of(api: httpx.Client, order_id: str) -> list[str]:
    data = api.get("/api/v1/events", params={"order": order_id, "limit": 100}).json()["data"]
    return [e["type"] for e in sorted(data, key=lambda e: e["sequence"])]


def test_an_underpaid_order_owes_its_money_back_after_approval(
    kassa: KassaServer, api: httpx.Client, clock_back: None
) -> None:
    placed = order(api)
    pay(api, placed["id"], 400)
    kassa.clock.advance(700)
    kassa.tick()
    kassa.tick()  # again: nothing more is due
    expired = api.get(f"/api/v1/orders/{placed['id']}").json()
    assert (expired["status"], expired["exception"], expired["amount_refunded"]) == (
        "expired",
        "underpaid",
        0,
    )
    (rule,) = refunds_of(api, placed["id"])
    assert (rule["origin"], rule["amount"], rule["status"], rule["approved"]) == (
        "underpaid",
        400,
        "pending_destination",
        False,
    )
    assert events_of(api, placed["id"])[-3:] == ["order.expired", "order.underpaid", "refund.created"]
    (usd,) = api.get("/api/v1/balances", params={"test": "true"}).json()["data"]
    assert (usd["available"], usd["accounts"]["refunds_payable"]) == (0, 400)
    # The customer gives the address; it waits for approval: the worker does not send it, and the
    # merchant cannot take the same money twice.
    assert httpx.post(rule["destination_url"], data={"destination": "test:payer"}).status_code == 200
    kassa.tick()
    assert refunds_of(api, placed["id"])[0]["status"] == "pending"
    assert api.post(f"/api/v1/orders/{placed['id']}/refunds", json={"amount": 1}).status_code == 400
    approved = api.post(f"/api/v1/refunds/{rule['id']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "confirmed"
    assert api.get(f"/api/v1/orders/{placed['id']}").json()["amount_refunded"] == 400
    assert api.post(f"/api/v1/refunds/{rule['id']}/approve").status_code == 409
    ledger_ok(kassa)


def test_automatic_policy_sends_an_overpayments_excess(kassa: KassaServer, api: httpx.Client) -> None:
    changed = api.patch("/api/v1/merchant", json={"refund_policy": "automatic"})
    assert changed.status_code == 200 and changed.json()["refund_policy"] == "automatic"
    placed = order(api)
    pay(api, placed["id"], 1500)
    paid = api.get(f"/api/v1/orders/{placed['id']}").json()
    assert (paid["status"], paid["exception"]) == ("paid", "overpaid")
    (rule,) = refunds_of(api, placed["id"])
    assert (rule["origin"], rule["amount"], rule["approved"], rule["status"]) == (
        "overpaid",
        500,
        True,
        "pending_destination",
    )
    kassa.tick()  # nowhere to send it yet
    assert refunds_of(api, placed["id"])[0]["status"] == "pending_destination"
    given = httpx.post(rule["destination_url"], data={"destination": "test:payer"})  # approved: sent at once
    assert given.status_code == 200 and 'data-status="confirmed"' in given.text
    (sent,) = refunds_of(api, placed["id"])
    assert sent["status"] == "confirmed" and sent["reference"] == f"test-sent:{rule['id']}"
    assert api.get(f"/api/v1/orders/{placed['id']}").json()["amount_refunded"] == 500
    assert [e for e in events_of(api, placed["id"]) if e.startswith("refund.")] == [
        "refund.created",
        "refund.sent",
        "refund.confirmed",
    ]
    (usd,) = api.get("/api/v1/balances", params={"test": "true"}).json()["data"]
    assert (usd["available"], usd["accounts"]["incoming"], usd["accounts"]["refunds_payable"]) == (
        1000,
        -1000,
        0,
    )
    ledger_ok(kassa)


def test_late_money_the_merchant_does_not_accept_goes_back(
    kassa: KassaServer, api: httpx.Client, clock_back: None
) -> None:
    assert api.patch("/api/v1/merchant", json={"late_payment_policy": "refund"}).status_code == 200
    placed = order(api)
    kassa.clock.advance(700)
    kassa.tick()
    assert api.get(f"/api/v1/orders/{placed['id']}").json()["status"] == "expired"
    pay(api, placed["id"], 1000)
    late = api.get(f"/api/v1/orders/{placed['id']}").json()
    assert late["status"] == "expired" and late["payments"][0]["late"] is True
    (rule,) = refunds_of(api, placed["id"])
    assert (rule["origin"], rule["amount"], rule["approved"]) == ("unpaid", 1000, False)
    ledger_ok(kassa)


def test_refund_policy_is_checked(api: httpx.Client) -> None:
    bad = api.patch("/api/v1/merchant", json={"refund_policy": "sometimes"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "refund_policy"
    assert api.get("/api/v1/merchant").json()["refund_policy"] == "approve"
