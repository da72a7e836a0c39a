"""Orders priced in several methods through the API: quotes at a static rate, method choice
allocating the destination, quote refresh, and the merchant's quote_at setting.

A test double stands in for a chain rail (`coin`, paying in XMR) so the core's side of the rail
contract is tested without a node; the real Monero rail has its own tests against monerod."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar

import httpx
import pytest

from kassa.rails.base import (
    Destination,
    MethodSpec,
    NoGateway,
    NoSending,
    NoSubmissions,
    Quote,
    QuoteRequest,
    RailConfig,
    RailHealth,
    RailSettings,
)
from kassa.rails.registry import get_rail, rail_classes
from kassa.rates import RateCache, StaticRateSource
from tests.support.server import KassaServer


class CoinSettings(RailSettings):
    label: str = "coin"
    token: str | None = None


class CoinRail(NoSubmissions, NoGateway, NoSending):
    name: ClassVar[str] = "coin"
    test: ClassVar[bool] = False
    settings_model: ClassVar[type[RailSettings]] = CoinSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})
    allocated: ClassVar[list[str]] = []

    def methods(self, config: RailConfig) -> list[MethodSpec]:
        return [MethodSpec("XMR", "XMR")]

    async def prepare(
        self, config: RailConfig, request: QuoteRequest, quote: Quote, address: str | None = None
    ) -> Destination:
        if address is None:
            self.allocated.append(request.order_id)
        return Destination(
            address=f"coin:{request.order_id}", payment_uri=f"coin:{request.order_id}?a={quote.amount}"
        )

    def watcher(self, config: RailConfig) -> None:
        return None

    async def check(self, config: RailConfig) -> RailHealth:
        return RailHealth(ok=True)


@pytest.fixture
def coin(kassa: KassaServer) -> Iterator[None]:
    rail_classes()["coin"] = CoinRail  # type: ignore[assignment]
    get_rail.cache_clear()
    quoter = kassa.runtime.orders.quoter
    original = quoter.rates
    quoter.rates = RateCache(
        StaticRateSource({"XMR/USD": "150"}, kassa.clock), kassa.clock, timedelta(minutes=5)
    )
    try:
        yield
    finally:
        quoter.rates = original
        rail_classes().pop("coin", None)
        get_rail.cache_clear()


def order(api: httpx.Client, **body: Any) -> dict[str, Any]:
    r = api.post("/api/v1/orders", json={"amount": 1000, "currency": "USD", "expires_in": 3600, **body})
    assert r.status_code == 201, r.text
    return r.json()


def test_quotes_and_method_choice(api: httpx.Client, kassa: KassaServer, coin: None) -> None:
    r = api.put("/api/v1/payment-methods/coin", json={"label": "x", "token": "s3cret"})
    assert r.status_code == 200 and r.json()["settings"] == {"label": "x", "token": "********"}
    o = order(api)
    assert o["method"] is None and o["amount_due"] is None
    quotes = {q["method"]: q for q in o["payment_methods"]}
    assert quotes["XMR"]["amount"] == 66_666_666_667 and quotes["XMR"]["currency"] == "XMR"
    assert quotes["XMR"]["rate"] == "150" and quotes["XMR"]["address"] is None  # allocated on choice
    assert quotes["test"]["amount"] == 1000
    chosen = api.post(f"/api/v1/orders/{o['id']}/method", json={"method": "XMR"}).json()
    assert chosen["method"] == "XMR" and chosen["amount_due"] == 66_666_666_667
    assert chosen["payment_currency"] == "XMR"
    xmr = next(q for q in chosen["payment_methods"] if q["method"] == "XMR")
    assert xmr["address"] == f"coin:{o['id']}"
    # Choosing again does not allocate a second destination.
    api.post(f"/api/v1/orders/{o['id']}/method", json={"method": "XMR"})
    assert CoinRail.allocated.count(o["id"]) == 1
    bad = api.post(f"/api/v1/orders/{o['id']}/method", json={"method": "BTC"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "method"


def test_secret_kept_when_omitted(api: httpx.Client, coin: None) -> None:
    api.put("/api/v1/payment-methods/coin", json={"token": "s3cret"})
    r = api.put("/api/v1/payment-methods/coin", json={"label": "renamed"})
    assert r.json()["settings"] == {"label": "renamed", "token": "********"}


def test_expired_quote_is_refreshed_only_while_unpaid(
    api: httpx.Client, kassa: KassaServer, coin: None
) -> None:
    api.put("/api/v1/payment-methods/coin", json={})
    o = order(api)
    first = api.post(f"/api/v1/orders/{o['id']}/method", json={"method": "test"}).json()
    old = next(q for q in first["payment_methods"] if q["method"] == "XMR")["expires_at"]
    kassa.clock.advance(901)  # past the quote lifetime, before the order's expiry
    again = api.post(f"/api/v1/orders/{o['id']}/method", json={"method": "XMR"}).json()
    new = next(q for q in again["payment_methods"] if q["method"] == "XMR")["expires_at"]
    assert new > old
    # Refreshed again after its destination was allocated: same address, a URI with the new amount.
    kassa.runtime.orders.quoter.rates = RateCache(
        StaticRateSource({"XMR/USD": "200"}, kassa.clock), kassa.clock, timedelta(minutes=5)
    )
    kassa.clock.advance(901)
    third = api.post(f"/api/v1/orders/{o['id']}/method", json={"method": "XMR"}).json()
    xmr = next(q for q in third["payment_methods"] if q["method"] == "XMR")
    assert xmr["address"] == f"coin:{o['id']}" and xmr["amount"] == 50_000_000_000
    assert xmr["payment_uri"] == f"coin:{o['id']}?a=50000000000" and third["amount_due"] == 50_000_000_000
    assert CoinRail.allocated.count(o["id"]) == 1
    # Once money was seen, the method (and its quote) is locked.
    api.post(f"/api/v1/orders/{o['id']}/method", json={"method": "test"})
    api.post("/api/v1/test/payments", json={"order": o["id"], "amount": 10})
    r = api.post(f"/api/v1/orders/{o['id']}/method", json={"method": "XMR"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "method_locked"


def test_quote_at_method_choice(api: httpx.Client, kassa: KassaServer, coin: None) -> None:
    api.put("/api/v1/payment-methods/coin", json={})
    assert (
        api.patch("/api/v1/merchant", json={"quote_at": "method_choice"}).json()["quote_at"]
        == "method_choice"
    )
    o = order(api)
    before = next(q for q in o["payment_methods"] if q["method"] == "XMR")
    kassa.clock.advance(10)
    chosen = api.post(f"/api/v1/orders/{o['id']}/method", json={"method": "XMR"}).json()
    after = next(q for q in chosen["payment_methods"] if q["method"] == "XMR")
    assert after["expires_at"] > before["expires_at"]  # a fresh quote, taken at the choice


def test_missing_rate_refuses_the_order(api: httpx.Client, kassa: KassaServer, coin: None) -> None:
    api.put("/api/v1/payment-methods/coin", json={})
    r = api.post("/api/v1/orders", json={"amount": 1000, "currency": "EUR", "payment_methods": ["XMR"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "rate_unavailable"
    assert "XMR/EUR" in r.json()["error"]["message"]
    # Not asked for by name: the method that cannot be priced is left out, the others are offered.
    r = api.post("/api/v1/orders", json={"amount": 1000, "currency": "EUR"})
    assert r.status_code == 201 and r.json()["payment_methods"][0]["method"] == "test"
    assert len(r.json()["payment_methods"]) == 1 and r.json()["method"] == "test"
