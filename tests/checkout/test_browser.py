"""The checkout page in real headless Chromium (Debian's, never a downloaded one)."""

from __future__ import annotations

import os
import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.checkout.conftest import MakeOrder, OpenPage, order_status
from tests.conftest import CHROMIUM
from tests.support.server import KassaServer

SCREENSHOT = "/tmp/kassa-checkout.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_pay_in_full_updates_in_place_then_lands_on_success_url(
    open_page: OpenPage, kassa: KassaServer, api: httpx.Client, make_order: MakeOrder
) -> None:
    success = f"{kassa.base_url}/healthz"
    order = make_order(
        cart=[{"name": "Espresso cup", "price": 1250, "quantity": 2}, {"name": "Beans 250 g", "price": 899}],
        success_url=success,
        description="Order #1042",
    )
    page, errors = open_page(viewport={"width": 900, "height": 1100})
    page.goto(order["checkout_url"])
    expect(page.locator("#status-title")).to_have_text("Waiting for your payment")
    expect(page.get_by_role("button", name="Copy address")).to_be_visible()  # shown by the script
    expect(page.locator(".countdown")).to_have_text(re.compile(r"^1[45]:\d\d$"))
    page.screenshot(path=SCREENSHOT, full_page=True)

    navigations: list[str] = []
    page.on(
        "framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None
    )
    page.evaluate("window.__marker = 'still-here'")
    page.get_by_role("button", name="Pay in full").click()
    expect(page.locator("#status-title")).to_have_text("Payment seen")
    expect(page.get_by_text("Timer paused: payment seen")).to_be_visible()
    assert page.evaluate("window.__marker") == "still-here"  # no reload
    assert navigations == []
    assert order_status(api, order["id"])["status"] == "processing"

    page.get_by_role("button", name="Confirm (add a block)").click()
    expect(page.locator("#status-title")).to_have_text("Paid")
    assert errors == []  # no CSP violation, no failed request on the checkout page
    page.wait_for_url(success, timeout=10_000)
    assert '"status":"ok"' in page.content()
    assert order_status(api, order["id"])["status"] == "paid"


def test_countdown_ticks_and_copy_button_copies(open_page: OpenPage, make_order: MakeOrder) -> None:
    order = make_order(expires_in=120)
    page, errors = open_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(order["checkout_url"])
    first = page.locator(".countdown").inner_text()
    page.wait_for_timeout(1100)
    assert page.locator(".countdown").inner_text() != first
    page.get_by_role("button", name="Copy address").click()
    expect(page.get_by_text("Address copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == f"test:{order['id']}"
    assert errors == []


def test_cancel_lands_on_a_cancel_url_of_another_origin(
    open_page: OpenPage, kassa: KassaServer, api: httpx.Client, make_order: MakeOrder
) -> None:
    # localhost is another origin than 127.0.0.1: the CSP's form-action must allow the redirect.
    cancel = f"http://localhost:{kassa.port}/healthz"
    order = make_order(cancel_url=cancel)
    page, errors = open_page()
    page.goto(order["checkout_url"])
    page.get_by_role("button", name="Cancel payment and return to Test Shop").click()
    page.wait_for_url(cancel, timeout=10_000)
    assert order_status(api, order["id"])["status"] == "canceled"
    assert not [e for e in errors if "Content Security Policy" in e]


def test_without_javascript_the_forms_still_work(
    open_page: OpenPage, kassa: KassaServer, api: httpx.Client, make_order: MakeOrder
) -> None:
    order = make_order(success_url=f"{kassa.base_url}/healthz")
    page, _ = open_page(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page.goto(order["checkout_url"])
    expect(page.get_by_role("button", name="Copy address")).to_be_hidden()
    expect(page.get_by_role("link", name="Refresh to see the latest status")).to_be_visible()
    page.screenshot(path="/tmp/kassa-checkout-mobile-nojs.png", full_page=True)
    page.get_by_role("button", name="Pay in full").click()
    expect(page.locator("#status-title")).to_have_text("Payment seen")
    page.get_by_role("button", name="Confirm (add a block)").click()
    expect(page.locator("#status-title")).to_have_text("Paid")
    expect(page.get_by_role("link", name="Continue to Test Shop")).to_have_attribute(
        "href", f"{kassa.base_url}/healthz"
    )
    assert page.url == order["checkout_url"]  # no script, no automatic redirect
    assert order_status(api, order["id"])["status"] == "paid"
