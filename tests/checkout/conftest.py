"""Helpers for the checkout page tests: orders made through the API, forms posted like a browser,
and Debian's headless Chromium (never a downloaded one) driven by Playwright."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page
from sqlalchemy import insert, select, update

from kassa.db.tables import orders, quotes
from tests.support.server import KassaServer

MakeOrder = Callable[..., dict[str, Any]]


@pytest.fixture
def make_order(api: httpx.Client) -> MakeOrder:
    """Create an order for this test's merchant (25.00 USD unless told otherwise)."""

    def make(**fields: Any) -> dict[str, Any]:
        body = {"currency": "USD", "amount": 2500, **fields}
        if "cart" in body:
            body.pop("amount")
        response = api.post("/api/v1/orders", json=body)
        assert response.status_code == 201, response.text
        order: dict[str, Any] = response.json()
        return order

    return make


@pytest.fixture
def shopper(kassa: KassaServer) -> Iterator[httpx.Client]:
    """The customer's browser with JavaScript off: no credentials, redirects shown, not followed."""
    with httpx.Client(base_url=kassa.base_url, timeout=30, follow_redirects=False) as client:
        yield client


def post_form(
    client: httpx.Client, kassa: KassaServer, path: str, data: dict[str, str] | None = None, **headers: str
) -> httpx.Response:
    """POST a form the way Chromium does from a `Referrer-Policy: no-referrer` page."""
    sent = {"Origin": "null", "Sec-Fetch-Site": "same-origin", **headers}
    return client.post(path, data=data or {}, headers=sent)


def order_status(api: httpx.Client, order_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/api/v1/orders/{order_id}").json()
    return body


def update_order(kassa: KassaServer, order_id: str, **values: Any) -> None:
    """Change an order row directly (states the API cannot reach yet, e.g. a non-test order)."""

    async def run() -> None:
        async with kassa.runtime.db.transaction() as tx:
            await tx.conn.execute(update(orders).where(orders.c.id == order_id).values(**values))

    kassa.call(run())


def add_second_method(kassa: KassaServer, order_id: str, method: str = "alt", currency: str = "EUR") -> None:
    """Give an order a second quote and no chosen method, as a merchant with two rails would get.

    Only the test rail exists today, so the method choice cannot be reached through the API."""

    async def run() -> None:
        async with kassa.runtime.db.transaction() as tx:
            row = (await tx.conn.execute(select(orders).where(orders.c.id == order_id))).one()
            quote = (await tx.conn.execute(select(quotes).where(quotes.c.order_pk == row.pk))).one()
            values = {k: v for k, v in quote._mapping.items() if k != "pk"}
            values.update(
                method=method,
                rail="test",
                currency=currency,
                amount=quote.amount * 9 // 10,
                destination=f"alt:{order_id}",
                payment_uri=None,
            )
            await tx.conn.execute(insert(quotes).values(**values))
            await tx.conn.execute(
                update(orders)
                .where(orders.c.pk == row.pk)
                .values(method=None, amount_due=None, payment_methods=["test", method])
            )

    kassa.call(run())


OpenPage = Callable[..., tuple[Page, list[str]]]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Fresh pages, closed after the test (so no long poll outlives it); each comes with a list
    that collects console errors and warnings (CSP violations show up there)."""
    contexts: list[BrowserContext] = []

    def open_(**options: Any) -> tuple[Page, list[str]]:
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page, errors

    yield open_
    for context in contexts:
        context.close()
