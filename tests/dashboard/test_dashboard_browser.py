"""The dashboard in real headless Chromium: a merchant's day, start to end, with a screenshot of every
page (in $KASSA_ARTIFACTS/dashboard, default test-artifacts/dashboard); and what a browser must
refuse: a form posted from another site, another merchant's order."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from scripts.procs import free_port

from tests.conftest import CHROMIUM
from tests.dashboard.support import PASSWORD, admin_get, new_user
from tests.support.receiver import Receiver
from tests.support.server import KassaServer

ARTIFACTS = Path(os.environ.get("KASSA_ARTIFACTS", "test-artifacts")) / "dashboard"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"),
]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page: Page, name: str, database_url: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"{name}-{backend}.png"), full_page=True)


def sign_in(page: Page, kassa: KassaServer, email: str) -> None:
    page.goto(f"{kassa.base_url}/dashboard/orders")
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{kassa.base_url}/dashboard/orders")


def test_a_merchants_day(
    page: Page, kassa: KassaServer, merchant: tuple[str, str], receiver: Receiver, database_url: str
) -> None:
    user = new_user(kassa, merchant[0])
    sign_in(page, kassa, user["email"])
    shot(page, "01-orders-empty", database_url)

    # An API key, created on the page and shown once.
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("shop backend")
    page.get_by_label("orders:write").check()
    page.get_by_label("orders:read").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key").inner_text()
    assert secret.startswith("ksk_")
    shot(page, "02-key-created", database_url)

    # A webhook endpoint, to the receiver.
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("HTTPS URL").fill(receiver.url + "/dash")
    page.get_by_role("button", name="Add endpoint").click()
    receiver.secrets["/dash"] = [page.locator("#new-secret").inner_text()]

    # The shop's backend makes an order with the new key; the list shows it.
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {secret}"}) as shop:
        order = shop.post(
            "/api/v1/orders",
            json={"amount": 1999, "currency": "EUR", "order_id": "A-1001", "confirmations": 0},
        ).json()
    page.get_by_role("link", name="Orders").click()
    row = page.get_by_role("row").filter(has_text=order["id"])
    expect(row).to_contain_text("19.99 EUR")
    expect(row).to_contain_text("open")
    shot(page, "03-orders", database_url)

    # Its page follows it live: paid on the test rail, the timeline grows without a reload by hand.
    page.get_by_role("link", name=order["id"]).click()
    expect(page.locator("#status")).to_have_text("open")
    shot(page, "04-order-open", database_url)
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {merchant[1]}"}) as api:
        api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 1999}).raise_for_status()
    expect(page.locator("#status")).to_have_text("paid", timeout=15_000)
    expect(page.locator("#timeline")).to_contain_text("payment.received")
    expect(page.locator("#timeline")).to_contain_text("order.paid")
    shot(page, "05-order-paid", database_url)

    # Its webhooks went out; one is sent again from the timeline, with the same webhook-id.
    kassa.deliver()
    first = [m.body["type"] for m in receiver.on("/dash")]
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {merchant[1]}"}) as api:
        endpoint = api.get("/api/v1/webhook-endpoints").json()["data"][0]
        log = api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()
    assert "order.paid" in first, (kassa.clock.now(), log)
    page.reload()
    paid_row = page.locator("#timeline li").filter(has_text="order.paid")
    paid_row.get_by_role("button", name="Redeliver order.paid").click()
    expect(page.get_by_role("status")).to_contain_text("queued for delivery again")
    kassa.deliver()
    again = receiver.on("/dash")
    assert [m.body["type"] for m in again].count("order.paid") == 2
    ids = {m.headers["webhook-id"] for m in again if m.body["type"] == "order.paid"}
    assert len(ids) == 1

    for name, link in (
        ("06-balances", "Balances"),
        ("07-webhooks", "Webhooks"),
        ("08-methods", "Payment methods"),
    ):
        page.get_by_role("link", name=link, exact=True).click()
        shot(page, name, database_url)
    page.get_by_role("link", name="Settings").click()
    shot(page, "09-settings", database_url)
    page.get_by_role("link", name=user["email"]).click()
    shot(page, "10-account", database_url)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{kassa.base_url}/dashboard/login")
    shot(page, "11-signed-out", database_url)
    page.goto(f"{kassa.base_url}/dashboard/orders")
    expect(page).to_have_url(re.compile(r"/dashboard/login"))


class _EvilPage(BaseHTTPRequestHandler):
    """Another site: its page posts a form to the dashboard as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<!doctype html><form id="f" method="post" action="{self.target}">'
            '<input name="scopes" value="orders:write"><input name="csrf" value="guess"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_another_site_cannot_use_the_session_nor_another_merchant(
    page: Page, kassa: KassaServer, merchant: tuple[str, str], database_url: str
) -> None:
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {merchant[1]}"}) as api:
        theirs = api.post("/api/v1/orders", json={"amount": 500, "currency": "EUR"}).json()
    other_id, _ = kassa.new_merchant("Other Shop")
    user = new_user(kassa, other_id)
    sign_in(page, kassa, user["email"])
    keys_before = admin_get(kassa, f"/api/v1/merchants/{other_id}/keys").json()["data"]

    # A page on another site (localhost is another site than 127.0.0.1) submits a form to the
    # dashboard in the signed-in browser: the SameSite cookie stays home, and nothing is created.
    port = free_port()
    handler = type("Evil", (_EvilPage,), {"target": f"{kassa.base_url}/dashboard/keys"})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"http://localhost:{port}/")
        page.wait_for_url(re.compile(r"/dashboard/"), timeout=10_000)
        # No session came along: the dashboard answered as to a stranger, with its sign-in form.
        expect(page).to_have_url(re.compile(r"/dashboard/login\?next=/dashboard/keys"))
        shot(page, "12-cross-site-refused", database_url)
    finally:
        server.shutdown()
        server.server_close()
    assert admin_get(kassa, f"/api/v1/merchants/{other_id}/keys").json()["data"] == keys_before

    # Another merchant's order is not there for this user, by link or by search.
    page.goto(f"{kassa.base_url}/dashboard/orders/{theirs['id']}")
    expect(page.get_by_role("alert")).to_contain_text("no order")
    shot(page, "13-other-merchant-refused", database_url)
    page.goto(f"{kassa.base_url}/dashboard/orders")
    page.get_by_label("Order id").fill(theirs["id"])
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("no order")
