"""Unit tests of the page model, the CSRF check and the headers (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kassa.checkout.present import amount_for, format_duration, present, state_of, status_payload
from kassa.checkout.security import csp, origin_of, page_headers, same_origin_post

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BASE = "https://pay.example.com"


def quote(method: str = "test", currency: str = "USD", amount: int = 2500) -> dict[str, Any]:
    return {
        "method": method,
        "rail": "test",
        "currency": currency,
        "amount": amount,
        "rate": "1",
        "address": f"{method}:ord_x",
        "payment_uri": f"{method}:ord_x?amount={amount}",
        "expires_at": "2026-05-01T12:15:00Z",
    }


def view(**changes: Any) -> dict[str, Any]:
    """An order view as `OrderService.get_public` returns it (see services/views.py)."""
    order: dict[str, Any] = {
        "id": "ord_x",
        "object": "order",
        "order_id": "shop-42",
        "status": "open",
        "exception": None,
        "amount": 2500,
        "currency": "USD",
        "cart": None,
        "description": "Two mugs",
        "email": "buyer@example.com",
        "confirmations": 2,
        "expires_at": "2026-05-01T12:15:00Z",
        "timer_paused": False,
        "success_url": "https://shop.example/thanks",
        "cancel_url": None,
        "callback_url": "https://shop.example/hook",
        "session_id": "sess",
        "metadata": {"secret": "x"},
        "method": "test",
        "payment_methods": [quote()],
        "payment_currency": "USD",
        "amount_due": 2500,
        "amount_received": 0,
        "amount_confirmed": 0,
        "amount_refunded": 0,
        "payments": [],
        "test": True,
        "version": 1,
        "paid_at": None,
    }
    order.update(changes)
    return order


def payment(amount: int, confirmations: int = 0, status: str = "pending") -> dict[str, Any]:
    return {"amount": amount, "confirmations": confirmations, "status": status}


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, "open"),
        ({"method": None, "payment_methods": [quote(), quote("alt", "EUR")]}, "choose"),
        ({"status": "processing"}, "processing"),
        ({"status": "paid"}, "paid"),
        ({"status": "paid", "exception": "overpaid"}, "overpaid"),
        ({"status": "paid", "exception": "paid_late"}, "paid_late"),
        ({"status": "expired"}, "expired"),
        ({"status": "expired", "exception": "underpaid"}, "underpaid"),
        ({"status": "canceled"}, "canceled"),
        ({"status": "invalid"}, "invalid"),
    ],
)
def test_every_status_has_its_own_state_and_words(changes: dict[str, Any], state: str) -> None:
    order = view(**changes)
    assert state_of(order) == state
    co = present(order, "Shop", NOW)
    assert co.state == state
    assert co.title and co.message
    assert co.can_cancel is (order["status"] == "open")


def test_open_order_shows_destination_countdown_and_exact_amounts() -> None:
    order = view(
        amount=123456789,
        currency="KWD",
        payment_currency="KWD",
        amount_due=123456789,
        payment_methods=[quote(currency="KWD", amount=123456789)],
        cart=[{"name": "Dates", "price": 41152263, "quantity": 3, "image": None}],
    )
    co = present(order, "Shop", NOW + timedelta(seconds=30))
    assert co.amount == "KWD\u00a0123,456.789"  # three decimals, exact, no float (English by default)
    assert co.pay_amount == "KWD\u00a0123,456.789"
    assert co.cart[0].price == "KWD\u00a041,152.263"
    assert co.cart[0].total == "KWD\u00a0123,456.789"
    assert co.address == "test:ord_x"
    assert co.qr_svg is not None and str(co.qr_svg).startswith("<svg viewBox=")
    assert co.seconds_left == 870
    assert co.time_left == "14:30"
    assert not co.timer_paused


def test_crypto_amounts_are_exact_beyond_float_precision() -> None:
    wei = 10**18 + 1  # 1.000000000000000001 ETH: a float would lose the last wei
    order = view(
        payment_currency="ETH",
        amount_due=wei,
        amount_received=wei - 1,
        method="eth",
        payment_methods=[quote("eth", "ETH", wei)],
    )
    co = present(order, "Shop", NOW)
    assert co.pay_amount == "1.000000000000000001\u00a0ETH"
    assert co.received == "1\u00a0ETH"
    assert co.remaining == "0.000000000000000001\u00a0ETH"
    assert co.title == "Partly paid"


def test_processing_pauses_the_timer_and_hides_the_address_qr() -> None:
    order = view(status="processing", timer_paused=True, amount_received=2500, payments=[payment(2500, 1)])
    co = present(order, "Shop", NOW)
    assert co.timer_paused
    assert co.seconds_left is None
    assert co.qr_svg is None
    assert (co.confirmations, co.confirmations_required) == (1, 2)
    assert [a.action for a in co.test_actions] == ["over", "confirm"]


def test_time_up_before_the_worker_expires_the_order() -> None:
    co = present(view(), "Shop", NOW + timedelta(minutes=20))
    assert co.time_up and co.seconds_left == 0
    assert co.title == "Time is up"
    assert co.qr_svg is None  # do not invite a payment that would arrive late


def test_underpaid_explains_the_refund() -> None:
    order = view(status="expired", exception="underpaid", amount_received=1250)
    co = present(order, "Bakery", NOW)
    assert "$12.50 of $25.00" in co.message
    assert "Bakery will refund the money received" in co.message


def test_only_a_plain_paid_order_redirects() -> None:
    assert present(view(status="paid"), "S", NOW).redirect_url == "https://shop.example/thanks"
    for exception in ("overpaid", "paid_late"):
        co = present(view(status="paid", exception=exception), "S", NOW)
        assert co.redirect_url is None  # the customer must read the note first
        assert co.success_url == "https://shop.example/thanks"


def test_no_automatic_redirect_when_the_order_says_so() -> None:
    co = present(view(status="paid", auto_redirect=False), "S", NOW)
    assert co.redirect_url is None and co.success_url == "https://shop.example/thanks"


def test_btcpay_placeholders_in_the_success_url_are_filled_in() -> None:
    order = view(status="paid", success_url="https://shop.example/t/{OrderId}?i={InvoiceId}")
    assert present(order, "S", NOW).redirect_url == "https://shop.example/t/shop-42?i=ord_x"
    order["metadata"] = {"orderId": "1001"}  # Greenfield's order number wins
    assert present(order, "S", NOW).success_url == "https://shop.example/t/1001?i=ord_x"


def test_method_choice_lists_every_quote_in_its_own_currency() -> None:
    order = view(
        method=None,
        amount_due=None,
        payment_currency=None,
        payment_methods=[quote(), quote("alt", "EUR", 2250)],
    )
    co = present(order, "Shop", NOW)
    assert [(m.method, m.amount) for m in co.methods] == [("test", "$25.00"), ("alt", "€22.50")]
    assert co.pay_amount is None and co.address is None


def test_test_button_amounts() -> None:
    assert amount_for(view(), "full") == 2500
    assert amount_for(view(), "part") == 1250
    assert amount_for(view(), "over") == 2750
    assert amount_for(view(amount_received=2499), "part") == 1  # at least one minor unit
    assert amount_for(view(amount_received=2500), "full") is None
    assert amount_for(view(amount_received=2500), "over") == 250
    assert amount_for(view(payment_methods=[quote("eth", "ETH")], method="eth"), "full") is None


def test_non_test_orders_get_no_test_buttons() -> None:
    assert present(view(test=False), "Shop", NOW).test_actions == ()


def test_status_payload_has_no_private_fields() -> None:
    order = view()
    body = status_payload(order, present(order, "Shop", NOW))
    for private in ("email", "metadata", "callback_url", "session_id", "order_id", "payments"):
        assert private not in body
    flat = repr(body)
    for value in ("buyer@example.com", "shop.example/hook", "sess", "shop-42"):
        assert value not in flat


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (59, "0:59"), (75, "1:15"), (3725, "1:02:05"), (90000, "25:00:00")]
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_origin_check() -> None:
    def ok(**headers: str) -> bool:
        lowered = {k.lower().replace("_", "-"): v for k, v in headers.items()}
        return same_origin_post({"host": "10.0.0.5:8000", **lowered}, "http", BASE)

    assert ok()  # no Origin (curl, old browsers): nothing to compare
    assert ok(origin=BASE)
    assert ok(origin="HTTPS://PAY.EXAMPLE.COM")
    assert ok(origin="http://10.0.0.5:8000")  # the Host it was reached at
    assert ok(origin="null", sec_fetch_site="same-origin")  # no-referrer pages send Origin: null
    assert not ok(origin="null")
    assert not ok(origin="https://evil.example")
    assert not ok(origin="https://pay.example.com.evil.example")
    assert not ok(origin=BASE, sec_fetch_site="cross-site")
    assert not ok(sec_fetch_site="same-site")


def test_csp_allows_no_inline_script_and_only_the_merchant_origin_for_forms() -> None:
    policy = csp(["https://shop.example/cancel?x=1", None, "javascript:alert(1)", "https://a b/"])
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "form-action 'self' https://shop.example;" in policy
    assert "frame-ancestors 'none'" in policy
    assert origin_of("https://user:pw@Shop.Example:8443/x") == "https://shop.example:8443"
    assert origin_of("https://a;b/") is None
    headers = page_headers()
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
