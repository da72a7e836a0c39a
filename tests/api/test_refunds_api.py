"""Refunds through the API on SQLite and PostgreSQL, on the test rail (which sends at once): partial
and repeated refunds within what was received, concurrent requests over the limit (only one wins),
idempotency, bad input, events and the ledger."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from tests.api.test_ledger_api import ledger_ok, paid_order
from tests.support.server import KassaServer


def refund(api: httpx.Client, order_id: str, **body: Any) -> httpx.Response:
    return api.post(f"/api/v1/orders/{order_id}/refunds", json=body)


def balances(api: httpx.Client) -> dict[str, int]:
    (usd,) = api.get("/api/v1/balances", params={"test": "true"}).json()["data"]
    return dict(usd["accounts"])


def test_partial_and_repeated_refunds_go_back_at_once(kassa: KassaServer, api: httpx.Client) -> None:
    order = paid_order(api, 2500)
    first = refund(
        api, order["id"], amount=1000, reason="one item was out of stock", destination="test:customer"
    )
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "confirmed" and body["destination"] == "test:customer"
    assert body["reference"] == f"test-sent:{body['id']}" and body["sent_at"] and body["confirmed_at"]
    assert (body["amount"], body["currency"], body["origin"], body["destination_url"]) == (
        1000,
        "USD",
        "merchant",
        None,
    )
    assert api.get(f"/api/v1/orders/{order['id']}").json()["amount_refunded"] == 1000
    assert balances(api) == {
        "incoming": -1500,
        "balance": 1500,
        "refunds_payable": 0,
        "fees": 0,
        "payouts_in_flight": 0,
        "paid_out": 0,
        "network_fees": 0,
    }
    second = refund(api, order["id"], amount=1500, destination="test:other-wallet")
    assert second.status_code == 201 and second.json()["destination"] == "test:other-wallet"
    over = refund(api, order["id"], amount=1)
    assert over.status_code == 400 and "at most 0" in over.json()["error"]["message"]
    listed = api.get(f"/api/v1/orders/{order['id']}/refunds").json()["data"]
    assert [r["amount"] for r in listed] == [1500, 1000]
    assert api.get(f"/api/v1/refunds/{body['id']}").json() == {**body, "updated_at": listed[1]["updated_at"]}
    events = [
        e["type"]
        for e in api.get("/api/v1/events", params={"order": order["id"], "limit": 100}).json()["data"]
    ]
    assert events.count("refund.created") == 2 and events.count("refund.confirmed") == 2
    sequences = [
        e["sequence"]
        for e in api.get("/api/v1/events", params={"order": order["id"], "limit": 100}).json()["data"]
    ]
    assert sorted(sequences) == list(range(1, len(sequences) + 1))
    ledger_ok(kassa)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"amount": 2501}, 400, "amount"),
        ({"amount": 0}, 400, "amount"),
        ({"amount": -5}, 400, "amount"),
        ({"amount": "10"}, 400, "amount"),
        ({"amount": 10, "currency": "EUR"}, 400, "currency"),
        ({"amount": 10, "destination": "0x1234"}, 400, "destination"),
        ({"amount": 10, "extra": 1}, 400, "extra"),
        ({"amount": 2**256}, 400, "amount"),
    ],
)
def test_bad_refunds_are_refused_and_nothing_is_posted(
    kassa: KassaServer, api: httpx.Client, body: dict[str, Any], status: int, param: str
) -> None:
    order = paid_order(api, 2500)
    before = balances(api)
    answer = refund(api, order["id"], **body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["param"] == param
    assert balances(api) == before and api.get(f"/api/v1/orders/{order['id']}/refunds").json()["data"] == []


def test_nothing_paid_or_not_yours(kassa: KassaServer, api: httpx.Client) -> None:
    unpaid = api.post("/api/v1/orders", json={"amount": 100, "currency": "USD"}).json()
    answer = refund(api, unpaid["id"], amount=10)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "nothing_to_refund"
    assert refund(api, "ord_nope", amount=10).status_code == 404
    order = paid_order(api, 300)
    _other, key = kassa.new_merchant("Refund thief")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as other:
        assert refund(other, order["id"], amount=10).status_code == 404
        mine = refund(api, order["id"], amount=10).json()["id"]
        assert other.get(f"/api/v1/refunds/{mine}").status_code == 404
        assert other.post(f"/api/v1/refunds/{mine}/cancel").status_code == 404


def test_the_same_idempotency_key_makes_one_refund(kassa: KassaServer, api: httpx.Client) -> None:
    order = paid_order(api, 800)
    headers = {"Idempotency-Key": "refund-once"}
    answers = [
        api.post(f"/api/v1/orders/{order['id']}/refunds", json={"amount": 500}, headers=headers)
        for _ in range(3)
    ]
    assert {a.status_code for a in answers} == {201} and len({a.json()["id"] for a in answers}) == 1
    assert len(api.get(f"/api/v1/orders/{order['id']}/refunds").json()["data"]) == 1


def test_concurrent_refunds_over_the_limit_only_one_wins(
    kassa: KassaServer, api: httpx.Client, merchant: tuple[str, str]
) -> None:
    order = paid_order(api, 2500)
    barrier = threading.Barrier(4)
    answers: list[httpx.Response] = []

    def ask() -> None:
        with httpx.Client(
            base_url=kassa.base_url, headers={"Authorization": f"Bearer {merchant[1]}"}, timeout=30
        ) as client:
            barrier.wait()
            answers.append(refund(client, order["id"], amount=1500, destination="test:payer"))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [201, 400, 400, 400], [a.text for a in answers]
    assert api.get(f"/api/v1/orders/{order['id']}").json()["amount_refunded"] == 1500
    assert balances(api)["balance"] == 1000
    ledger_ok(kassa)


def test_state_moves_that_cannot_happen(kassa: KassaServer, api: httpx.Client) -> None:
    order = paid_order(api, 600)
    done = refund(api, order["id"], amount=100, destination="test:customer").json()
    cancel = api.post(f"/api/v1/refunds/{done['id']}/cancel")
    assert cancel.status_code == 409 and cancel.json()["error"]["code"] == "refund_state"
    marked = api.post(f"/api/v1/refunds/{done['id']}/sent", json={"reference": "tx1"})
    assert marked.status_code == 409
    assert api.post(f"/api/v1/refunds/{done['id']}/sent", json={"reference": ""}).status_code == 400
    assert api.get("/api/v1/refunds/rfd_nope").status_code == 404


def test_the_customer_gives_the_address_through_the_link(kassa: KassaServer, api: httpx.Client) -> None:
    order = paid_order(api, 700)
    asked = refund(api, order["id"], amount=700).json()
    assert asked["status"] == "pending_destination" and asked["destination"] is None
    link = asked["destination_url"]
    assert link.startswith(f"{kassa.base_url}/refund/") and asked["id"] not in link.rsplit("/", 1)[1][:10]
    with httpx.Client(timeout=10) as browser:
        checkout = browser.get(f"{kassa.base_url}/pay/{order['id']}")
        payload = link.rsplit("/", 1)[1].split(".")[0]  # the token's signed part: its time may differ
        assert 'id="refund-claim"' in checkout.text and f"/refund/{payload}." in checkout.text
        page = browser.get(link)
        assert page.status_code == 200 and 'data-status="pending_destination"' in page.text
        assert "Your USD address" in page.text and "$7.00" in page.text
        bad = browser.post(link, data={"destination": "bc1qnotatestaddress"})
        assert bad.status_code == 400 and "test:" in bad.text
        empty = browser.post(link, data={"destination": "  "})
        assert empty.status_code == 400
        assert api.get(f"/api/v1/refunds/{asked['id']}").json()["status"] == "pending_destination"
        sent = browser.post(link, data={"destination": "test:the-payers-wallet"})
        assert sent.status_code == 200 and 'data-status="confirmed"' in sent.text
        again = browser.post(link, data={"destination": "test:someone-else"})
        assert again.status_code == 409
        forged = browser.get(link[:-3] + ("abc" if not link.endswith("abc") else "xyz"))
        assert forged.status_code == 404
        assert 'id="refund-claim"' not in browser.get(f"{kassa.base_url}/pay/{order['id']}").text
    done = api.get(f"/api/v1/refunds/{asked['id']}").json()
    assert (done["status"], done["destination"], done["destination_url"]) == (
        "confirmed",
        "test:the-payers-wallet",
        None,
    )
    ledger_ok(kassa)


def test_a_refund_link_expires(kassa: KassaServer, api: httpx.Client) -> None:
    order = paid_order(api, 300)
    link = refund(api, order["id"], amount=300).json()["destination_url"]
    before = kassa.clock.now()
    kassa.clock.advance(8 * 86400)
    try:
        with httpx.Client(timeout=10) as browser:
            expired = browser.get(link)
            assert expired.status_code == 410 and "expired" in expired.text
            assert browser.post(link, data={"destination": "test:late"}).status_code == 410
    finally:
        kassa.clock.advance((before - kassa.clock.now()).total_seconds())
    fresh = api.get(f"/api/v1/orders/{order['id']}/refunds").json()["data"][0]["destination_url"]
    assert httpx.get(fresh).status_code == 200  # the merchant reads the refund: a new link


def test_the_customer_gets_the_refund_link_by_email(kassa: KassaServer, api: httpx.Client) -> None:
    order = api.post(
        "/api/v1/orders", json={"amount": 900, "currency": "USD", "email": "payer@example.org"}
    ).json()
    assert api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 900}).status_code == 201
    assert api.post("/api/v1/test/blocks", json={"count": 1}).status_code == 200
    asked = refund(api, order["id"], amount=400).json()
    refund(api, order["id"], amount=100, destination="test:known")  # knows where: no email
    kassa.send_emails()
    mails = [
        m
        for m in kassa.mailer.messages
        if m.to == "payer@example.org" and m.kind == "customer_refund_address"
    ]
    assert len(mails) == 1, [m.subject for m in mails]
    (mail,) = mails
    assert "$4.00" in mail.subject and "where should it go" in mail.subject
    base, token = asked["destination_url"].rsplit("/", 1)
    signed_part = f"{base}/{token.split('.')[0]}."  # the link's time part may differ by a second
    assert signed_part in mail.text and signed_part in mail.html
    assert order["id"] in mail.text


def test_a_payment_to_the_merchant_is_not_a_refund(kassa: KassaServer, api: httpx.Client) -> None:
    order = paid_order(api, 600)
    asked = refund(api, order["id"], amount=600).json()  # waits for the customer's address
    (payment,) = order["payments"]
    for reference in (payment["reference"], payment["reference"].split(":")[0]):
        wrong = api.post(f"/api/v1/refunds/{asked['id']}/sent", json={"reference": reference})
        assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "reference", wrong.text
    assert api.get(f"/api/v1/refunds/{asked['id']}").json()["status"] == "pending_destination"
    ledger_ok(kassa)
