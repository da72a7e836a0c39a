"""@servebase/payment against a real Kassa server (SQLite and PostgreSQL): the dummy gateway (the test
rail) and NewebPay MPG 2.0 through a loopback stand-in of its page that posts back the documented
notification form."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from kassa.rails.newebpay import mpg
from tests.compat.servebase_shop import (
    ServebaseShop,
    _shop,
    dummy_shop,
    newebpay,
    newebpay_payment,
    newebpay_shop,
)
from tests.support.newebpay_stand_in import HASH_IV, HASH_KEY, MERCHANT_ID, NewebPayStandIn
from tests.support.server import KassaServer

__all__ = ["dummy_shop", "newebpay", "newebpay_shop"]  # fixtures


def lderror(response: httpx.Response, ident: int) -> str:
    assert response.status_code == 490, response.text
    body = response.json()
    assert body["name"] == "lderror" and body["id"] == ident, body
    assert body["message"]
    return str(body["message"])


def post_form(url: str, fields: dict[str, str]) -> httpx.Response:
    """What servebase's client does with /pay/sign's answer: a browser form POST to `url`."""
    return httpx.post(url, data=fields, timeout=10)


# ----- the dummy gateway -----------------------------------------------------------------------


def test_dummy_flow_as_the_seed_shows_it(dummy_shop: ServebaseShop) -> None:
    signed = dummy_shop.sign({"scope": "course-101", "name": "Course 101", "amount": "1200"})
    assert set(signed) == {"url", "method", "payload", "slug", "state", "key"}
    assert signed["url"] == f"{dummy_shop.server.base_url}/ext/pay/gw/dummy"
    assert signed["method"] == "POST" and signed["state"] == "pending"
    assert isinstance(signed["key"], int) and 0 < signed["key"] < 2**53
    slug = signed["slug"]
    assert signed["payload"] == {
        "slug": slug,
        "key": str(signed["key"]),
        "amount": "1200",
        "name": "Course 101",
        "scope": "course-101",
    }
    assert dummy_shop.check(slug)["state"] == "pending"
    page = post_form(signed["url"], signed["payload"])
    assert page.status_code == 200 and "1200 TWD" in page.text
    assert 'data-state="pending"' in page.text and "Course 101" in page.text
    paid = dummy_shop.anon.post("/extapi/pay/gw/dummy/pay", json={"slug": slug})
    assert paid.status_code == 200 and paid.content == b""
    state = dummy_shop.check(slug)
    assert state["state"] == "complete" and state["paidtime"] and state["createdtime"]
    order = dummy_shop.order(slug)
    assert order["status"] == "paid" and order["test"] is True and order["amount"] == 1200
    assert order["metadata"]["servebase"] == {
        "key": signed["key"],
        "scope": "course-101",
        "name": "Course 101",
    }
    # A repeat of the payment changes nothing.
    again = dummy_shop.anon.post("/extapi/pay/gw/dummy/notify", json={"slug": slug})
    assert again.status_code == 200
    assert dummy_shop.order(slug)["version"] == order["version"]
    assert dummy_shop.events(slug).count("payment.confirmed") == 1


def test_dummy_page_fails_then_pays_through_forms(dummy_shop: ServebaseShop) -> None:
    signed = dummy_shop.sign({"name": "Mug", "amount": "350"})
    slug = signed["slug"]
    with httpx.Client(base_url=dummy_shop.server.base_url, timeout=10, follow_redirects=True) as browser:
        _fail_then_pay(dummy_shop, browser, slug)


def _fail_then_pay(dummy_shop: ServebaseShop, browser: httpx.Client, slug: str) -> None:
    failed = browser.post("/extapi/pay/gw/dummy/pay", data={"slug": slug, "result": "failed"})
    assert failed.status_code == 200 and str(failed.url).endswith(f"/ext/pay/gw/dummy/done?slug={slug}")
    assert 'data-state="failed"' in failed.text
    assert dummy_shop.check(slug)["state"] == "failed"
    order = dummy_shop.order(slug)
    assert order["status"] == "open" and [p["status"] for p in order["payments"]] == ["rejected"]
    assert "payment.rejected" in dummy_shop.events(slug)
    page = browser.get("/ext/pay/gw/dummy", params={"slug": slug})
    assert page.status_code == 200 and 'id="pay"' in page.text  # the customer may try again
    paid = browser.post("/extapi/pay/gw/dummy/pay", data={"slug": slug, "result": "paid"})
    assert 'data-state="complete"' in paid.text
    assert dummy_shop.check(slug)["state"] == "complete"
    # A failure after the payment never downgrades it.
    late = dummy_shop.anon.post("/extapi/pay/gw/dummy/notify", json={"slug": slug, "result": "failed"})
    assert late.status_code == 200
    assert dummy_shop.order(slug)["status"] == "paid"
    assert dummy_shop.check(slug)["state"] == "complete"


def test_sign_needs_the_merchants_key(dummy_shop: ServebaseShop, kassa: KassaServer) -> None:
    body = {"payload": {"name": "x", "amount": "10"}}
    assert "API key" in lderror(dummy_shop.anon.post("/pay/sign", json=body), 1000)
    _other, other_key = kassa.new_merchant("Someone else")
    foreign = dummy_shop.anon.post("/pay/sign", json=body, headers={"Authorization": f"Bearer {other_key}"})
    assert "not the payment merchant" in lderror(foreign, 1000)
    # The path servebase's client library posts to answers the same.
    assert dummy_shop.api.post("/api/pay/sign", json=body).status_code == 200


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"payload": {"amount": "12.5"}}, "0 decimal places"),
        ({"payload": {"amount": "-3"}}, "positive"),
        ({"payload": {"amount": "abc"}}, "not a number"),
        ({"payload": {"amount": True}}, "string"),
        ({"payload": {"name": "no amount"}}, "string"),
        ({"payload": {"amount": "1e40"}}, "too large"),
        ({"payload": "100"}, "payload must be an object"),
        ({}, "payload must be an object"),
        ({"gateway": "stripe", "payload": {"amount": "1"}}, "not configured"),
        ({"payload": {"amount": "1", "email": "nobody"}}, "email"),
        ({"payload": {"amount": "1", "name": 5}}, "payload.name"),
        ([], "JSON object"),
    ],
)
def test_sign_refuses_bad_requests_in_servebase_style(
    dummy_shop: ServebaseShop, body: Any, words: str
) -> None:
    assert words in lderror(dummy_shop.api.post("/pay/sign", json=body), 1020)


def test_check_answers_empty_for_unknown_or_foreign_slugs(
    dummy_shop: ServebaseShop, kassa: KassaServer
) -> None:
    assert dummy_shop.check("ord_doesnotexist") == {}
    assert dummy_shop.check("../etc") == {}
    other_id, other_key = kassa.new_merchant("Other shop")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {other_key}"}) as other:
        created = other.post("/api/v1/orders", json={"amount": 100, "currency": "USD"})
        assert created.status_code == 201, created.text
        assert dummy_shop.check(created.json()["id"]) == {}
    lderror(dummy_shop.anon.post("/pay/check", json={"slug": "x"}), 400)
    lderror(
        dummy_shop.anon.post("/pay/check", content=b"{", headers={"content-type": "application/json"}), 1020
    )


def test_open_signing_and_an_unconfigured_server(kassa: KassaServer) -> None:
    shops = _shop(kassa, "Open shop", {"gateway": "dummy", "gateways": {"dummy": {}}, "sign": "open"})
    shop = next(shops)
    try:
        signed = shop.anon.post("/pay/sign", json={"payload": {"amount": "5"}})
        assert signed.status_code == 200, signed.text
    finally:
        shops.close()
    with httpx.Client(base_url=kassa.base_url) as plain:  # no `payment` setting: nothing there
        assert "not configured" in lderror(plain.post("/pay/sign", json={"payload": {"amount": "5"}}), 404)


# ----- NewebPay --------------------------------------------------------------------------------


def _open_trade(
    shop: ServebaseShop, gateway: NewebPayStandIn, amount: str = "1500"
) -> tuple[dict[str, Any], str]:
    signed = shop.sign(
        {
            "scope": "plan-pro",
            "name": "Pro plan",
            "desc": "Pro plan, 1 year",
            "amount": amount,
            "email": "buyer@example.com",
            "lng": "en",
        }
    )
    assert signed["url"] == gateway.gateway_url and signed["method"] == "POST"
    assert set(signed["payload"]) == {"MerchantID", "TradeInfo", "TradeSha", "Version"}
    page = post_form(signed["url"], signed["payload"])  # the customer's browser opens NewebPay's page
    assert page.status_code == 200, page.text
    (order_no,) = [
        no for no, t in gateway.trades.items() if t["ItemDesc"] == "Pro plan, 1 year" and no not in _seen
    ]
    _seen.add(order_no)
    return signed, order_no


_seen: set[str] = set()


def test_newebpay_flow_as_the_seed_shows_it(newebpay_shop: ServebaseShop, newebpay: NewebPayStandIn) -> None:
    signed, order_no = _open_trade(newebpay_shop, newebpay)
    base = newebpay_shop.server.base_url
    trade = newebpay.trades[order_no]
    assert trade["MerchantID"] == MERCHANT_ID and trade["Amt"] == "1500" and trade["Version"] == "2.0"
    assert trade["NotifyURL"] == f"{base}/extapi/pay/notify" and trade["ReturnURL"] == f"{base}/ext/pay/done"
    assert trade["Email"] == "buyer@example.com" and trade["LangType"] == "en"
    assert re.fullmatch(r"ks_[A-Za-z0-9]{22}", order_no)  # not guessable, unlike servebase's key
    assert order_no not in signed["payload"]["TradeInfo"]
    slug = signed["slug"]
    order = newebpay_shop.order(slug)
    assert order["test"] is False and order["currency"] == "TWD" and order["amount"] == 1500
    assert order["payment_methods"][0]["address"] == order_no
    assert newebpay_shop.check(slug)["state"] == "pending"
    answer = newebpay.pay(order_no)
    assert answer.status_code == 200, answer.text
    assert newebpay_shop.check(slug)["state"] == "complete"
    paid = newebpay_shop.order(slug)
    assert paid["status"] == "paid"
    assert [(p["reference"], p["amount"], p["status"]) for p in paid["payments"]] == [
        (order_no, 1500, "confirmed")
    ]
    # The payer comes back through ReturnURL with the same result: shown, not counted again.
    back = newebpay_shop.anon.post("/ext/pay/done", data=newebpay.notify_forms[-1])
    assert back.status_code == 200 and 'data-state="complete"' in back.text
    # A replayed notification changes nothing.
    replay = newebpay_shop.anon.post("/extapi/pay/notify", data=newebpay.notify_forms[-1])
    assert replay.status_code == 200
    again = newebpay_shop.order(slug)
    assert again["version"] == paid["version"] and len(again["payments"]) == 1
    assert newebpay_shop.events(slug).count("payment.confirmed") == 1
    # A later failure for the same trade never downgrades it.
    assert newebpay.fail(order_no, "卡片拒絕交易").status_code == 200
    assert newebpay_shop.order(slug)["status"] == "paid"
    assert newebpay_shop.check(slug)["state"] == "complete"


def test_newebpay_return_before_notify_and_gateway_route(
    newebpay_shop: ServebaseShop, newebpay: NewebPayStandIn
) -> None:
    signed, order_no = _open_trade(newebpay_shop, newebpay, amount="99")
    newebpay.trades[order_no]["NotifyURL"] = f"{newebpay_shop.server.base_url}/ext/pay/gw/newebpay/done"
    page = newebpay.pay(order_no)  # ReturnURL's POST arriving first (the notification is late)
    assert page.status_code == 200 and 'data-state="complete"' in page.text
    late = newebpay_shop.anon.post("/extapi/pay/gw/newebpay/notify", data=newebpay.notify_forms[-1])
    assert late.status_code == 200
    assert len(newebpay_shop.order(signed["slug"])["payments"]) == 1
    wrong = newebpay_shop.anon.post("/extapi/pay/gw/dummy/notify", data=newebpay.notify_forms[-1])
    assert "not configured" in lderror(wrong, 404)


def test_newebpay_declined_card_then_a_new_attempt(
    newebpay_shop: ServebaseShop, newebpay: NewebPayStandIn
) -> None:
    signed, order_no = _open_trade(newebpay_shop, newebpay)
    assert newebpay.fail(order_no, "授權失敗").status_code == 200
    slug = signed["slug"]
    assert newebpay_shop.check(slug)["state"] == "failed"
    order = newebpay_shop.order(slug)
    assert order["status"] == "open" and order["payments"][0]["status"] == "rejected"
    assert order["payment_methods"][0]["address"] not in (None, order_no)  # NewebPay takes a number once
    assert "payment.rejected" in newebpay_shop.events(slug)
    # servebase's client asks again: a new record, a new trade, paid.
    signed2, order_no2 = _open_trade(newebpay_shop, newebpay)
    assert newebpay.pay(order_no2).status_code == 200
    assert newebpay_shop.check(signed2["slug"])["state"] == "complete"


def _snapshot(shop: ServebaseShop, slug: str) -> tuple[Any, ...]:
    order = shop.order(slug)
    return order["version"], order["status"], len(order["payments"]), tuple(shop.events(slug))


def test_newebpay_forged_or_mismatched_notifications_change_nothing(
    newebpay_shop: ServebaseShop, newebpay: NewebPayStandIn
) -> None:
    signed, order_no = _open_trade(newebpay_shop, newebpay)
    slug = signed["slug"]
    before = _snapshot(newebpay_shop, slug)
    notify = f"{newebpay_shop.server.base_url}/extapi/pay/notify"
    # The gateway charged another amount: refused.
    assert "amount" in lderror(newebpay.pay(order_no, amount=1499), 400)
    good = dict(newebpay.notify_forms[-1])
    # A flipped TradeInfo digit, a forged TradeSha, a lower-case TradeSha, a missing field.
    flipped = good["TradeInfo"][:-1] + ("0" if good["TradeInfo"][-1] != "0" else "1")
    for form in (
        {**good, "TradeInfo": flipped},
        {**good, "TradeSha": "0" * 64},
        {**good, "TradeSha": good["TradeSha"].lower()},
        {k: v for k, v in good.items() if k != "TradeSha"},
        {**good, "MerchantID": "MS0000001"},
    ):
        assert "rejected" in lderror(httpx.post(notify, data=form), 400)
    # Signed right but for another store's MerchantID (same keys): refused.
    info = mpg.encrypt_trade_info(
        {
            "Status": "SUCCESS",
            "Message": "ok",
            "MerchantID": "MS999",
            "Amt": 1500,
            "TradeNo": "1",
            "MerchantOrderNo": order_no,
        },
        HASH_KEY,
        HASH_IV,
    )
    other = {
        "Status": "SUCCESS",
        "MerchantID": "MS999",
        "Version": "2.0",
        "TradeInfo": info,
        "TradeSha": mpg.trade_sha(info, HASH_KEY, HASH_IV),
    }
    assert "another merchant" in lderror(httpx.post(notify, data=other), 400)
    # Signed right for an order number Kassa never issued.
    info = mpg.encrypt_trade_info(
        {
            "Status": "SUCCESS",
            "Message": "ok",
            "MerchantID": MERCHANT_ID,
            "Amt": 1500,
            "TradeNo": "1",
            "MerchantOrderNo": "ks_NeverIssued",
        },
        HASH_KEY,
        HASH_IV,
    )
    unknown = {
        "Status": "SUCCESS",
        "MerchantID": MERCHANT_ID,
        "Version": "2.0",
        "TradeInfo": info,
        "TradeSha": mpg.trade_sha(info, HASH_KEY, HASH_IV),
    }
    lderror(httpx.post(notify, data=unknown), 404)
    assert _snapshot(newebpay_shop, slug) == before
    assert newebpay_shop.check(slug)["state"] == "pending"
    # The genuine notification still counts.
    assert newebpay.pay(order_no).status_code == 200
    assert newebpay_shop.check(slug)["state"] == "complete"


def test_newebpay_notifications_padded_to_32_bytes(
    kassa: KassaServer,
) -> None:
    with NewebPayStandIn(notify_block_size=32) as gateway:
        shops = _shop(kassa, "Padded shop", newebpay_payment(gateway))
        shop = next(shops)
        try:
            signed, order_no = _open_trade(shop, gateway)
            assert gateway.pay(order_no, payment_type="VACC").status_code == 200
            assert shop.check(signed["slug"])["state"] == "complete"
        finally:
            shops.close()


def test_newebpay_settings_are_checked_at_start(kassa: KassaServer) -> None:
    from kassa.config import ConfigError

    merchant_id, _key = kassa.new_merchant("Bad config")
    bad = {
        "gateway": "newebpay",
        "merchant": merchant_id,
        "gateways": {"newebpay": {"MerchantID": MERCHANT_ID, "hashkey": "short", "hashiv": HASH_IV}},
    }
    with pytest.raises(ConfigError, match=r"(?i)payment\.gateways\.newebpay\.hashkey"):
        kassa.sibling(payment=bad)
    with pytest.raises(ConfigError, match=r"(?i)no entry under payment\.gateways"):
        kassa.sibling(payment={"gateway": "newebpay", "merchant": merchant_id, "gateways": {"dummy": {}}})
    secret = {
        "gateway": "newebpay",
        "merchant": merchant_id,
        "gateways": {"newebpay": {"MerchantID": MERCHANT_ID, "hashkey": HASH_KEY, "hashiv": HASH_IV}},
    }
    server = kassa.sibling(payment=secret)
    assert HASH_KEY not in repr(server.settings) and HASH_IV not in repr(server.settings)


def test_the_seeds_section_in_kassas_toml_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from kassa.config import ConfigError, load_settings

    path = tmp_path / "kassa.toml"
    path.write_text(
        f"""
[payment]
gateway = "newebpay"
merchant = "mch_shop"

[payment.gateways.dummy]

[payment.gateways.newebpay]
testing = true
MerchantID = "{MERCHANT_ID}"
hashkey = "{HASH_KEY}"
hashiv = "{HASH_IV}"
ReturnURL = "https://serve.base/ext/pay/done"
NotifyURL = "https://serve.base/extapi/pay/notify"
Email = "shop@serve.base"
"""
    )
    monkeypatch.setenv("KASSA_CONFIG", str(path))
    payment = load_settings().payment
    assert payment is not None and payment.gateway == "newebpay" and payment.sign == "api_key"
    gw = payment.gateways.newebpay
    assert gw is not None and gw.testing and gw.NotifyURL == "https://serve.base/extapi/pay/notify"
    assert payment.gateways.dummy is not None
    path.write_text(path.read_text() + "\n[payment.gateways.oen]\n")  # a gateway Kassa does not have
    with pytest.raises(ConfigError, match=r"(?i)payment\.gateways\.oen"):
        load_settings()
