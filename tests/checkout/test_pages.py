"""The checkout page over HTTP, without JavaScript: a real server on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from tests.checkout.conftest import MakeOrder, add_second_method, order_status, post_form, update_order
from tests.support.server import KassaServer

SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")


def text_of(html: str) -> str:
    """The page's visible words, roughly (tags out, whitespace squeezed)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def page(shopper: httpx.Client, order_id: str) -> str:
    response = shopper.get(f"/pay/{order_id}")
    assert response.status_code == 200, response.text
    return response.text


def assert_secure(response: httpx.Response) -> None:
    for name in SECURITY_HEADERS:
        assert name in response.headers, name
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_page_shows_merchant_cart_amounts_qr_and_test_banner(
    kassa: KassaServer, shopper: httpx.Client
) -> None:
    _, key = kassa.new_merchant("Café <Müller> & Söhne")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as api:
        order = api.post(
            "/api/v1/orders",
            json={
                "currency": "USD",
                "cart": [{"name": "Mug <b>", "price": 1250, "quantity": 2}, {"name": "Tea", "price": 399}],
            },
        ).json()
    response = shopper.get(f"/pay/{order['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_secure(response)
    html = response.text
    assert '<html lang="en">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "Café &lt;Müller&gt; &amp; Söhne" in html and "<Müller>" not in html  # escaped
    assert "Mug &lt;b&gt;" in html
    words = text_of(html)
    assert "$25.00 $12.50 each" in words
    assert "$3.99" in words
    assert "Total $28.99" in words
    assert "Amount to pay $28.99" in words  # in the method's currency
    assert "TEST MODE" in words
    assert re.search(r'<svg viewBox="0 0 \d+ \d+" class="qr-code">', html)
    assert f"test:{order['id']}" in html  # the address, as selectable text
    assert 'role="status" aria-live="polite"' in html
    assert re.search(r'data-seconds-left="(89\d|900)"', html)
    assert "Waiting for your payment" in words
    assert "Pay in full ($28.99)" in words
    assert "<script>" not in html  # no inline script


@pytest.mark.parametrize(
    ("currency", "amount", "shown"),
    [("JPY", 1500, "¥1,500"), ("KWD", 1234, "KWD 1.234"), ("USD", 5, "$0.05")],  # English, per Babel
)
def test_amounts_are_exact_in_every_exponent(
    make_order: MakeOrder, shopper: httpx.Client, currency: str, amount: int, shown: str
) -> None:
    order = make_order(currency=currency, amount=amount)
    words = text_of(page(shopper, order["id"]))
    assert f"Order total: {shown}" in words
    assert f"Amount to pay {shown}" in words


def test_page_and_status_never_show_private_fields(make_order: MakeOrder, shopper: httpx.Client) -> None:
    order = make_order(
        email="secret-buyer@example.com",
        metadata={"note": "meta-value-xyz"},
        callback_url="https://merchant.example/hook-xyz",
        fulfillment_url="https://merchant.example/fulfil-xyz",
        session_id="session-xyz",
        order_id="merchant-ref-xyz",
    )
    status = shopper.get(f"/pay/{order['id']}/status")
    assert status.status_code == 200
    assert_secure(status)
    body = status.json()
    assert body["status"] == "open" and body["version"] == order["version"]
    for key in ("email", "metadata", "callback_url", "fulfillment_url", "session_id", "order_id"):
        assert key not in body
    for response in (status, shopper.get(f"/pay/{order['id']}"), shopper.get(f"/pay/{order['id']}/panel")):
        assert "xyz" not in response.text


def test_pay_in_full_then_confirm_without_javascript(
    kassa: KassaServer, api: httpx.Client, make_order: MakeOrder, shopper: httpx.Client
) -> None:
    order = make_order(success_url="https://shop.example/thanks?o=1")
    answer = post_form(shopper, kassa, f"/pay/{order['id']}/test", {"action": "full"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/pay/{order['id']}"
    assert order_status(api, order["id"])["status"] == "processing"
    words = text_of(page(shopper, order["id"]))
    assert "Payment seen" in words
    assert "Timer paused: payment seen" in words
    assert "Confirmations 0 of 1" in words
    assert "Cancel payment" not in words  # only an open order can be canceled

    answer = post_form(shopper, kassa, f"/pay/{order['id']}/test", {"action": "confirm"})
    assert answer.status_code == 303
    assert order_status(api, order["id"])["status"] == "paid"
    html = page(shopper, order["id"])
    words = text_of(html)
    assert "Paid" in words and "Receipt" in words
    assert "Amount paid $25.00" in words
    assert 'href="https://shop.example/thanks?o=1"' in html
    assert "Test payments" not in words


def test_pay_part_shows_what_is_still_due(
    make_order: MakeOrder, kassa: KassaServer, shopper: httpx.Client
) -> None:
    order = make_order()
    post_form(shopper, kassa, f"/pay/{order['id']}/test", {"action": "part"})
    words = text_of(page(shopper, order["id"]))
    assert "Partly paid" in words
    assert "Received $12.50 Still to pay $12.50" in words
    assert "Time left:" in words  # the timer keeps running on a partial payment


def test_script_mode_answers_json(make_order: MakeOrder, kassa: KassaServer, shopper: httpx.Client) -> None:
    order = make_order()
    url = f"/pay/{order['id']}/test"
    nothing = post_form(shopper, kassa, url, {"action": "confirm"}, Accept="application/json")
    assert nothing.status_code == 409
    assert nothing.json()["notice"] == "no_pending"
    done = post_form(shopper, kassa, url, {"action": "over"}, Accept="application/json")
    assert (done.status_code, done.json()) == (200, {"ok": True})
    post_form(shopper, kassa, url, {"action": "confirm"}, Accept="application/json")
    status = shopper.get(f"/pay/{order['id']}/status").json()
    assert (status["status"], status["exception"], status["amount_received"]) == ("paid", "overpaid", 2750)
    assert status["redirect_url"] is None  # overpaid: the customer reads the note instead
    words = text_of(page(shopper, order["id"]))
    assert "Paid (more than due)" in words
    assert "You sent $27.50, more than the $25.00 due" in words


def test_bad_test_action_is_refused(make_order: MakeOrder, kassa: KassaServer, shopper: httpx.Client) -> None:
    order = make_order()
    answer = post_form(shopper, kassa, f"/pay/{order['id']}/test", {"action": "steal"})
    assert answer.status_code == 303
    assert answer.headers["location"].endswith("?notice=bad_form")
    assert "That form could not be read" in shopper.get(answer.headers["location"]).text


def test_cancel_redirects_to_cancel_url(
    kassa: KassaServer, api: httpx.Client, make_order: MakeOrder, shopper: httpx.Client
) -> None:
    order = make_order(cancel_url="https://shop.example/cart?from=kassa")
    response = shopper.get(f"/pay/{order['id']}")
    assert "form-action 'self' https://shop.example;" in response.headers["Content-Security-Policy"]
    answer = post_form(shopper, kassa, f"/pay/{order['id']}/cancel")
    assert answer.status_code == 303
    assert answer.headers["location"] == "https://shop.example/cart?from=kassa"
    assert order_status(api, order["id"])["status"] == "canceled"
    html = page(shopper, order["id"])
    assert "Canceled" in text_of(html)
    assert 'href="https://shop.example/cart?from=kassa"' in html  # "Back to ..."
    assert "Test payments" not in html


def test_cancel_without_cancel_url_shows_the_canceled_page(
    make_order: MakeOrder, kassa: KassaServer, shopper: httpx.Client
) -> None:
    order = make_order()
    answer = post_form(shopper, kassa, f"/pay/{order['id']}/cancel")
    assert (answer.status_code, answer.headers["location"]) == (303, f"/pay/{order['id']}")
    words = text_of(page(shopper, order["id"]))
    assert "Canceled This order was canceled. Do not send money for it." in words
    again = post_form(shopper, kassa, f"/pay/{order['id']}/cancel")
    assert again.headers["location"] == f"/pay/{order['id']}?notice=not_open"
    assert "no longer open" in shopper.get(again.headers["location"]).text


def test_expired_page(kassa: KassaServer, make_order: MakeOrder, shopper: httpx.Client) -> None:
    order = make_order(expires_in=60, cancel_url="https://shop.example/cart")
    kassa.clock.advance(61)
    assert kassa.tick() >= 1
    html = page(shopper, order["id"])
    words = text_of(html)
    assert (
        "Expired" in words and "nothing" not in words.lower()
    ) or "ran out before a payment arrived" in words
    assert "qr-code" not in html and "Cancel payment" not in words
    assert shopper.get(f"/pay/{order['id']}/status").json()["state"] == "expired"


def test_underpaid_page_explains_the_refund(
    kassa: KassaServer, api: httpx.Client, make_order: MakeOrder, shopper: httpx.Client
) -> None:
    order = make_order(expires_in=60)
    post_form(shopper, kassa, f"/pay/{order['id']}/test", {"action": "part"})
    kassa.clock.advance(61)
    kassa.tick()
    assert order_status(api, order["id"])["exception"] == "underpaid"
    words = text_of(page(shopper, order["id"]))
    assert "Expired: not enough received" in words
    assert "only $12.50 of $25.00 arrived" in words
    assert "Test Shop will refund the money received" in words


def test_paid_late_page(kassa: KassaServer, make_order: MakeOrder, shopper: httpx.Client) -> None:
    order = make_order(expires_in=60)
    kassa.clock.advance(61)
    kassa.tick()
    assert "Pay in full" in page(shopper, order["id"])  # the test panel can still send a late payment
    post_form(shopper, kassa, f"/pay/{order['id']}/test", {"action": "full"})
    post_form(shopper, kassa, f"/pay/{order['id']}/test", {"action": "confirm"})
    status = shopper.get(f"/pay/{order['id']}/status").json()
    assert (status["status"], status["exception"]) == ("paid", "paid_late")
    assert "Paid (late)" in text_of(page(shopper, order["id"]))


def test_invalid_page(kassa: KassaServer, shopper: httpx.Client) -> None:
    _, key = kassa.new_merchant("Slow Shop", monitoring_window=60, default_confirmations=3)
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as api:
        order = api.post("/api/v1/orders", json={"currency": "EUR", "amount": 999}).json()
    post_form(shopper, kassa, f"/pay/{order['id']}/test", {"action": "full"})
    kassa.clock.advance(61)
    kassa.tick()
    words = text_of(page(shopper, order["id"]))
    assert "Payment not confirmed" in words
    assert "Contact Slow Shop" in words


def test_unknown_order_is_a_404_page(shopper: httpx.Client, kassa: KassaServer) -> None:
    for path in ("/pay/ord_doesnotexist", "/pay/..%2F..%2Fetc", "/pay/" + "x" * 300, "/pay/a/b/c"):
        response = shopper.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Order not found" in response.text
        assert_secure(response)
    status = shopper.get("/pay/ord_doesnotexist/status")
    assert status.status_code == 404
    assert status.json()["error"]["code"] == "resource_missing"
    slash = shopper.get("/pay/ord_doesnotexist/")
    assert (slash.status_code, slash.headers["location"]) == (308, "/pay/ord_doesnotexist")
    assert post_form(shopper, kassa, "/pay/ord_doesnotexist/cancel").status_code == 404
    assert post_form(shopper, kassa, "/pay/ord_doesnotexist/test", {"action": "full"}).status_code == 404


def test_test_forms_are_404_on_a_non_test_order(
    kassa: KassaServer, api: httpx.Client, make_order: MakeOrder, shopper: httpx.Client
) -> None:
    # Every rail today is the test rail, so a live order is made by flipping the flag in the database.
    order = make_order()
    update_order(kassa, order["id"], test=False)
    html = page(shopper, order["id"])
    assert "TEST MODE" not in html and "Test payments" not in html
    for action in ("full", "part", "over", "confirm"):
        answer = post_form(shopper, kassa, f"/pay/{order['id']}/test", {"action": action})
        assert answer.status_code == 404
    assert order_status(api, order["id"])["amount_received"] == 0


def test_cross_site_forms_are_refused(
    kassa: KassaServer, api: httpx.Client, make_order: MakeOrder, shopper: httpx.Client
) -> None:
    order = make_order()
    cancel = f"/pay/{order['id']}/cancel"
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": kassa.base_url, "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    ):
        answer = shopper.post(cancel, headers=headers)
        assert answer.status_code == 403, headers
        assert "Form refused" in answer.text
    assert shopper.post(cancel, headers={"Origin": "null"}).status_code == 403
    assert order_status(api, order["id"])["status"] == "open"
    assert shopper.post(cancel, headers={"Origin": kassa.base_url}).status_code == 303
    assert order_status(api, order["id"])["status"] == "canceled"


def test_method_choice_without_javascript(
    kassa: KassaServer, api: httpx.Client, make_order: MakeOrder, shopper: httpx.Client
) -> None:
    order = make_order()
    add_second_method(kassa, order["id"])  # only the test rail exists, so a second quote is planted
    html = page(shopper, order["id"])
    words = text_of(html)
    assert "Choose a payment method" in words
    assert "Test payment $25.00" in words and "ALT (EUR) €22.50" in words
    assert "qr-code" not in html
    bad = post_form(shopper, kassa, f"/pay/{order['id']}/method", {"method": "nope"})
    assert bad.headers["location"].endswith("?notice=method")
    good = post_form(shopper, kassa, f"/pay/{order['id']}/method", {"method": "alt"})
    assert (good.status_code, good.headers["location"]) == (303, f"/pay/{order['id']}")
    html = page(shopper, order["id"])
    assert "Amount to pay €22.50" in text_of(html)
    assert f"alt:{order['id']}" in html and "qr-code" in html
    assert order_status(api, order["id"])["method"] == "alt"


def test_static_files_are_small_typed_and_cached(make_order: MakeOrder, shopper: httpx.Client) -> None:
    html = page(shopper, make_order()["id"])
    urls = re.findall(r'(?:href|src)="(/pay/static/[^"]+)"', html)
    assert sorted(u.rsplit(".", 1)[1] for u in urls) == ["css", "js"]
    for url in urls:
        response = shopper.get(url)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["content-type"].startswith(("text/css", "text/javascript"))
        assert len(response.content) < 12_000
        again = shopper.get(url, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304
    assert shopper.get("/pay/static/checkout.css").status_code == 404  # only the hashed names


def _wait_for_waiter(kassa: KassaServer, count: int) -> None:
    deadline = time.monotonic() + 5
    while kassa.runtime.hub.waiting < count:
        assert time.monotonic() < deadline, "the long poll never subscribed"
        time.sleep(0.005)


def test_status_long_poll_wakes_fast_on_change(
    kassa: KassaServer, api: httpx.Client, make_order: MakeOrder, shopper: httpx.Client
) -> None:
    order = make_order()
    url = f"/pay/{order['id']}/status?version={order['version']}&timeout_ms=25000"
    result: dict[str, Any] = {}

    def wait() -> None:
        with httpx.Client(base_url=kassa.base_url, timeout=30) as client:
            response = client.get(url)
            result["at"] = time.perf_counter()
            result["body"] = response.json()

    waiters = kassa.runtime.hub.waiting
    thread = threading.Thread(target=wait)
    thread.start()
    _wait_for_waiter(kassa, waiters + 1)
    paid = api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 2500})
    changed_at = time.perf_counter()  # the change is committed once the API has answered
    assert paid.status_code == 201
    thread.join(10)
    woke_ms = (result["at"] - changed_at) * 1000
    print(f"long poll woke {woke_ms:.1f} ms after the change was committed")
    assert result["body"]["status"] == "processing"
    assert result["body"]["version"] > order["version"]
    assert woke_ms < 100


def test_status_long_poll_waits_only_while_unchanged(make_order: MakeOrder, shopper: httpx.Client) -> None:
    order = make_order()
    base = f"/pay/{order['id']}/status"
    start = time.perf_counter()
    stale = shopper.get(f"{base}?version={order['version'] - 1}&timeout_ms=5000")
    assert time.perf_counter() - start < 1  # an old version answers at once
    assert stale.json()["version"] == order["version"]
    start = time.perf_counter()
    unchanged = shopper.get(f"{base}?version={order['version']}&timeout_ms=300")
    waited = time.perf_counter() - start
    assert 0.3 <= waited < 2
    assert unchanged.json()["version"] == order["version"]
    assert shopper.get(f"{base}?timeout_ms=-1").status_code == 400


def test_status_long_poll_ends_when_the_customer_leaves(kassa: KassaServer, make_order: MakeOrder) -> None:
    order = make_order()
    waiters = kassa.runtime.hub.waiting
    with socket.create_connection(("127.0.0.1", kassa.port)) as conn:
        conn.sendall(
            f"GET /pay/{order['id']}/status?version={order['version']}&timeout_ms=25000 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{kassa.port}\r\n\r\n".encode()
        )
        _wait_for_waiter(kassa, waiters + 1)
    deadline = time.monotonic() + 2  # the tab closed: the wait stops instead of holding on for 25 s
    while kassa.runtime.hub.waiting > waiters:
        assert time.monotonic() < deadline, "the long poll outlived its client"
        time.sleep(0.01)


def test_checkout_routes_stay_out_of_the_openapi_schema(anon: httpx.Client) -> None:
    paths = anon.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/orders" in paths
    assert not [p for p in paths if p.startswith("/pay")]
