"""The newebpay rail through Kassa's own API and checkout page (SQLite and PostgreSQL), with a
loopback stand-in of NewebPay's MPG page that posts back the documented notification form; and
the checkout's hand-over to it in real Chromium."""

from __future__ import annotations

import contextlib
import html
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kassa.errors import InvalidRequest
from kassa.rails.base import Destination, FormRequest, NoticeInvalid, Quote, QuoteRequest, RailConfig
from kassa.rails.newebpay.rail import NewebPayRail
from kassa.rails.test_rail import TestRail
from tests.support.newebpay_stand_in import HASH_IV, HASH_KEY, MERCHANT_ID, NewebPayStandIn
from tests.support.server import KassaServer

SAME_ORIGIN = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}


@pytest.fixture(scope="module")
def gateway() -> Iterator[NewebPayStandIn]:
    with NewebPayStandIn() as stand_in:
        yield stand_in


def settings(gateway: NewebPayStandIn, **extra: Any) -> dict[str, Any]:
    return {
        "merchant_id": MERCHANT_ID,
        "hash_key": HASH_KEY,
        "hash_iv": HASH_IV,
        "testing": True,
        "gateway_url": gateway.gateway_url,
        **extra,
    }


@pytest.fixture
def shop(api: httpx.Client, gateway: NewebPayStandIn) -> httpx.Client:
    response = api.put("/api/v1/payment-methods/newebpay", json=settings(gateway))
    assert response.status_code == 200, response.text
    return api


def new_order(api: httpx.Client, amount: int = 880, **extra: Any) -> dict[str, Any]:
    body = {
        "amount": amount,
        "currency": "TWD",
        "payment_methods": ["newebpay"],
        "description": "Tea set",
        "email": "buyer@example.com",
        **extra,
    }
    response = api.post("/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def hand_over(kassa: KassaServer, order_id: str) -> tuple[str, dict[str, str]]:
    """What the checkout page's button gives the browser: the gateway URL and the signed fields."""
    with httpx.Client(base_url=kassa.base_url, timeout=10) as browser:
        page = browser.post(f"/pay/{order_id}/gateway", headers=SAME_ORIGIN)
    assert page.status_code == 200, page.text
    assert "form-action 'self' http://127.0.0.1:" in page.headers["content-security-policy"]
    action = html.unescape(re.search(r'<form method="POST" action="([^"]+)"', page.text)[1])  # type: ignore[index]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
    return action, {k: html.unescape(v) for k, v in fields.items()}


def test_settings_are_checked_and_secrets_never_shown(api: httpx.Client, gateway: NewebPayStandIn) -> None:
    bad = api.put("/api/v1/payment-methods/newebpay", json=settings(gateway, hash_key="short"))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "settings.hash_key"
    bad = api.put("/api/v1/payment-methods/newebpay", json=settings(gateway, payment_types=["credit card"]))
    assert bad.status_code == 400
    good = api.put("/api/v1/payment-methods/newebpay", json=settings(gateway, payment_types=["CREDIT"]))
    assert good.status_code == 200, good.text
    shown = api.get("/api/v1/payment-methods").text
    assert HASH_KEY not in shown and HASH_IV not in shown
    check = api.post("/api/v1/payment-methods/newebpay/check")
    assert check.status_code == 200 and check.json()["details"]["environment"] == "test"


def test_only_orders_priced_in_twd(kassa: KassaServer, shop: httpx.Client) -> None:
    body = {"amount": 1000, "currency": "USD", "payment_methods": ["newebpay"]}
    no_rate = shop.post("/api/v1/orders", json=body)
    assert no_rate.status_code == 409 and no_rate.json()["error"]["code"] == "rate_unavailable"
    priced = kassa.sibling(rates={"primary": "static", "static": {"TWD/USD": "0.031"}}).start()
    try:
        answer = httpx.post(f"{priced.base_url}/api/v1/orders", json=body, headers=shop.headers)
    finally:
        priced.stop()
    assert answer.status_code == 400, answer.text
    assert "priced in TWD" in answer.json()["error"]["message"]


def test_paid_through_the_checkout_page(
    kassa: KassaServer, shop: httpx.Client, gateway: NewebPayStandIn
) -> None:
    order = new_order(shop)
    order_no = order["payment_methods"][0]["address"]
    assert re.fullmatch(r"ks_[A-Za-z0-9]{22}", order_no) and order["test"] is False
    page = httpx.get(f"{kassa.base_url}/pay/{order['id']}")
    assert 'id="gateway-pay"' in page.text and order_no not in page.text  # a button, no address or QR
    action, fields = hand_over(kassa, order["id"])
    assert action == gateway.gateway_url and set(fields) == {"MerchantID", "TradeInfo", "TradeSha", "Version"}
    assert httpx.post(action, data=fields).status_code == 200
    trade = gateway.trades[order_no]
    merchant_id = kassa.call(kassa.runtime.orders.get_public(order["id"]))[1].id
    assert trade["NotifyURL"] == f"{kassa.base_url}/gateways/newebpay/notify/{merchant_id}"
    assert trade["ReturnURL"] == f"{kassa.base_url}/pay/{order['id']}/return"
    assert trade["ClientBackURL"] == f"{kassa.base_url}/pay/{order['id']}"
    assert (trade["Amt"], trade["ItemDesc"], trade["Email"]) == ("880", "Tea set", "buyer@example.com")
    answer = gateway.pay(order_no)
    assert (answer.status_code, answer.text) == (200, "OK")
    paid = shop.get(f"/api/v1/orders/{order['id']}").json()
    assert paid["status"] == "paid" and paid["payments"][0]["reference"] == order_no
    # The payer's return carries the same result: taken as a repeat, then the page.
    back = httpx.post(f"{kassa.base_url}/pay/{order['id']}/return", data=gateway.notify_forms[-1])
    assert back.status_code == 303 and back.headers["location"].endswith(f"/pay/{order['id']}")
    assert shop.get(f"/api/v1/orders/{order['id']}").json()["version"] == paid["version"]
    # The button is gone once paid.
    assert httpx.post(f"{kassa.base_url}/pay/{order['id']}/gateway", headers=SAME_ORIGIN).status_code == 303


def test_return_before_the_notification(
    kassa: KassaServer, shop: httpx.Client, gateway: NewebPayStandIn
) -> None:
    order = new_order(shop, 120)
    action, fields = hand_over(kassa, order["id"])
    httpx.post(action, data=fields)
    order_no = order["payment_methods"][0]["address"]
    gateway.trades[order_no]["NotifyURL"] = f"{kassa.base_url}/pay/{order['id']}/return"
    assert gateway.pay(order_no).status_code == 303
    assert shop.get(f"/api/v1/orders/{order['id']}").json()["status"] == "paid"


def test_a_declined_card_leaves_the_order_open_with_a_new_number(
    kassa: KassaServer, shop: httpx.Client, gateway: NewebPayStandIn
) -> None:
    order = new_order(shop)
    action, fields = hand_over(kassa, order["id"])
    httpx.post(action, data=fields)
    first = order["payment_methods"][0]["address"]
    assert gateway.fail(first, "授權失敗").text == "OK"
    after = shop.get(f"/api/v1/orders/{order['id']}").json()
    assert after["status"] == "open" and [p["status"] for p in after["payments"]] == ["rejected"]
    second = after["payment_methods"][0]["address"]
    assert second != first and second.startswith("ks_")
    events = [e["type"] for e in shop.get("/api/v1/events", params={"order": order["id"]}).json()["data"]]
    assert "payment.rejected" in events and "payment.received" not in events
    action, fields = hand_over(kassa, order["id"])  # the customer tries again
    httpx.post(action, data=fields)
    assert gateway.pay(second).status_code == 200
    paid = shop.get(f"/api/v1/orders/{order['id']}").json()
    assert paid["status"] == "paid" and len(paid["payments"]) == 2


def test_native_notify_refusals(
    kassa: KassaServer, shop: httpx.Client, gateway: NewebPayStandIn, merchant: tuple[str, str]
) -> None:
    order = new_order(shop)
    action, fields = hand_over(kassa, order["id"])
    httpx.post(action, data=fields)
    order_no = order["payment_methods"][0]["address"]
    refused = gateway.pay(order_no, amount=881)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "amount_mismatch"
    good = gateway.notify_forms[-1]
    url = f"{kassa.base_url}/gateways/newebpay/notify/{merchant[0]}"
    tampered = httpx.post(url, data={**good, "TradeSha": good["TradeSha"][::-1]})
    assert tampered.status_code == 400 and tampered.json()["error"]["code"] == "notice_invalid"
    assert httpx.post(f"{kassa.base_url}/gateways/newebpay/notify/mch_nobody", data=good).status_code == 404
    assert httpx.post(f"{kassa.base_url}/gateways/grin/notify/{merchant[0]}", data=good).status_code == 404
    assert httpx.post(url, content=b"\xff\xfe").status_code == 400
    assert shop.get(f"/api/v1/orders/{order['id']}").json()["payments"] == []


# ----- the rail alone ------------------------------------------------------------------------------


def config(**extra: Any) -> RailConfig:
    return RailConfig(
        1,
        "mch_x",
        "newebpay",
        {"merchant_id": MERCHANT_ID, "hash_key": HASH_KEY, "hash_iv": HASH_IV, **extra},
    )


def form_request(**extra: Any) -> FormRequest:
    values: dict[str, Any] = dict(
        order_id="ord_x",
        destination="ks_abc",
        amount=100,
        currency="TWD",
        description="d" * 80,
        email=None,
        language="ja",
        notify_url="https://k.example/n",
        return_url="https://k.example/r",
    )
    values.update(extra)
    return FormRequest(**values)


def test_form_goes_to_production_unless_testing_and_cuts_the_description() -> None:
    rail = NewebPayRail()
    form = rail.payment_form(config(), form_request())
    assert form.url == "https://core.newebpay.com/MPG/mpg_gateway" and form.method == "POST"
    assert rail.payment_form(config(testing=True), form_request()).url.startswith("https://ccore.")
    with NewebPayStandIn() as stand_in:
        stand_in_form = rail.payment_form(config(gateway_url=stand_in.gateway_url), form_request())
        assert httpx.post(stand_in_form.url, data=stand_in_form.fields).status_code == 200
        trade = stand_in.trades["ks_abc"]
    assert trade["ItemDesc"] == "d" * 50 and trade["LangType"] == "jp" and "Email" not in trade


def test_notified_maps_status_and_refuses_forgeries() -> None:
    rail = NewebPayRail()
    with NewebPayStandIn() as stand_in:
        stand_in.trades["ks_abc"] = {
            "MerchantID": MERCHANT_ID,
            "Amt": "100",
            "RespondType": "JSON",
            "Version": "2.0",
            "NotifyURL": "http://127.0.0.1:9/",
        }
        for status, outcome in (("SUCCESS", "paid"), ("MPG03009", "failed")):
            with contextlib.suppress(httpx.HTTPError):  # nobody listens on port 9: only the form is wanted
                stand_in.pay("ks_abc", status=status)
            notice = rail.notified(config(), stand_in.notify_forms[-1])
            assert (notice.outcome, notice.destination, notice.reference, notice.amount) == (
                outcome,
                "ks_abc",
                "ks_abc",
                100,
            )
        with pytest.raises(NoticeInvalid, match="bad_sha"):
            rail.notified(config(), {**stand_in.notify_forms[-1], "TradeSha": "A" * 64})


async def test_prepare_keeps_a_given_number_and_refuses_other_currencies() -> None:
    rail = NewebPayRail()
    quote = Quote(
        "newebpay", "TWD", 100, __import__("decimal").Decimal(1), __import__("datetime").datetime.now()
    )
    request = QuoteRequest("ord_x", 100, "TWD", quote.expires_at)
    assert await rail.prepare(config(), request, quote, "ks_kept") == Destination(address="ks_kept")
    fresh = (await rail.prepare(config(), request, quote)).address
    assert fresh and fresh != (await rail.prepare(config(), request, quote)).address
    priced_in_usd = QuoteRequest("ord_x", 100, "USD", quote.expires_at)
    with pytest.raises(InvalidRequest, match="priced in TWD"):
        await rail.prepare(config(), priced_in_usd, quote)


def test_the_test_rails_notices() -> None:
    rail = TestRail()
    cfg = RailConfig(1, "mch_x", "test", {})
    assert rail.notified(cfg, {"address": "test:ord_1", "result": "paid"}).outcome == "paid"
    assert rail.notified(cfg, {"address": "test:ord_1", "result": "failed"}).outcome == "failed"
    for body in ({"address": "ks_1", "result": "paid"}, {"address": "test:ord_1", "result": "maybe"}, {}):
        with pytest.raises(NoticeInvalid):
            rail.notified(cfg, body)


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")
def test_the_checkout_hands_over_to_the_gateway_in_chromium(
    kassa: KassaServer, shop: httpx.Client, gateway: NewebPayStandIn
) -> None:
    from playwright.sync_api import sync_playwright

    from tests.conftest import ARGS, CHROMIUM

    order = new_order(shop, 450)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []

            def on_console(message: Any) -> None:
                if message.type in ("error", "warning") and not message.location["url"].startswith(
                    gateway.url
                ):
                    errors.append(message.text)  # the stand-in's own page (no favicon) is not Kassa's

            page.on("console", on_console)
            page.goto(f"{kassa.base_url}/pay/{order['id']}")
            assert errors == []  # no CSP violation on Kassa's page
            page.click("#gateway-pay")
            page.wait_for_url(gateway.gateway_url)  # the script posted the signed form on at once
            assert "NewebPay MPG (stand-in)" in page.content()
            order_no = order["payment_methods"][0]["address"]
            assert order_no in gateway.trades
            assert gateway.pay(order_no).status_code == 200
            page.goto(f"{kassa.base_url}/pay/{order['id']}")
            assert page.locator(".panel").get_attribute("data-state") == "paid"
            assert errors == []
        finally:
            browser.close()


def test_refunds_of_card_payments_are_sent_by_hand(
    kassa: KassaServer, shop: httpx.Client, gateway: NewebPayStandIn
) -> None:
    order = new_order(shop, 500)
    action, fields = hand_over(kassa, order["id"])
    httpx.post(action, data=fields)
    assert gateway.pay(order["payment_methods"][0]["address"]).status_code == 200
    created = shop.post(f"/api/v1/orders/{order['id']}/refunds", json={"amount": 200, "reason": "damaged"})
    assert created.status_code == 201, created.text
    refund = created.json()
    assert (refund["status"], refund["currency"], refund["rail"]) == ("pending", "TWD", "newebpay")
    sent = shop.post(f"/api/v1/refunds/{refund['id']}/sent", json={"reference": "NewebPay-close-7781"})
    assert sent.status_code == 200 and sent.json()["status"] == "sent"
    again = shop.post(f"/api/v1/refunds/{refund['id']}/sent", json={"reference": "NewebPay-close-7781"})
    assert again.status_code == 200 and again.json()["updated_at"] == sent.json()["updated_at"]
    other = shop.post(f"/api/v1/orders/{order['id']}/refunds", json={"amount": 300})
    canceled = shop.post(f"/api/v1/refunds/{other.json()['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    (twd,) = shop.get("/api/v1/balances").json()["data"]  # live money: NewebPay orders are not test orders
    assert twd["accounts"] == {
        "incoming": -300,
        "balance": 300,
        "refunds_payable": 0,
        "fees": 0,
        "payouts_in_flight": 0,
        "paid_out": 0,
        "network_fees": 0,
    }
    assert kassa.call(kassa.runtime.ledger.check()) is None
