"""A Kassa server that prices GRIN, a stand-in for each test's Grin wallet and node, and a merchant
wired to it, as KnockturnAllee's shops see Kassa."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import btcpay
import httpx
import pytest

from tests.compat.greenfield_shop import Shop
from tests.support.grin_stand_in import GrinStandIn
from tests.support.server import KassaServer
from tests.support.watching import Watching, watch_known_rails_only

RATES = {"primary": "static", "static": {"GRIN/USD": "0.05"}}
DUE_10_USD = 200_000_000_000  # 10.00 USD at 0.05 USD/GRIN, in nanogrin
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def gkassa(kassa: KassaServer) -> Iterator[KassaServer]:
    """A Kassa server on the same database and key as `kassa`, with a GRIN/USD rate of 0.05."""
    server = watch_known_rails_only(kassa.sibling(rates=RATES)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def grin_net() -> Iterator[GrinStandIn]:
    with GrinStandIn() as net:
        yield net


@dataclass
class KAShop:
    """One merchant with the grin rail, seen from its backend (api), its customers (anon) and the chain."""

    server: KassaServer
    net: GrinStandIn
    merchant_id: str
    key: str
    api: httpx.Client
    anon: httpx.Client

    @property
    def ka(self) -> str:
        return f"/merchants/{self.merchant_id}"

    def grin_settings(self, **settings: Any) -> dict[str, Any]:
        return {
            "wallet_url": self.net.wallet_url,
            "owner_api_url": self.net.wallet_url,
            "owner_api_secret": self.net.api_secret,
            "wallet_password": self.net.wallet_password,
            "node_api_url": self.net.node_url,
            "node_api_secret": self.net.node_api_secret,
            "poll_interval": 0.2,
            "timeout": 5,
            **settings,
        }

    def configure(self, **settings: Any) -> dict[str, Any]:
        response = self.api.put("/api/v1/payment-methods/grin", json=self.grin_settings(**settings))
        assert response.status_code == 200, response.text
        return dict(response.json())

    def create(
        self, order_id: str, amount: int = 1000, currency: str = "USD", **extra: Any
    ) -> httpx.Response:
        body = {"order_id": order_id, "amount": {"amount": amount, "currency": currency}, **extra}
        return self.api.post(self.ka, json=body)

    def order(self, order_id: str, **extra: Any) -> dict[str, Any]:
        response = self.create(order_id, **extra)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def view(self, order_id: str) -> dict[str, Any]:
        response = self.anon.get(f"{self.ka}/orders/{order_id}", headers={"Accept": "application/json"})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def native(self, order_id: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/orders/{order_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def pay(self, order_id: str, slate: Any) -> httpx.Response:
        return self.anon.post(f"{self.ka}/orders/{order_id}", content=json.dumps(slate))

    def rpc(self, order_id: str, method: str, params: Any, id: Any = 1) -> httpx.Response:
        call = {"jsonrpc": "2.0", "method": method, "id": id, "params": params}
        return self.anon.post(f"{self.ka}/orders/{order_id}/v2/foreign", json=call)

    def wait_status(self, order_id: str, status: str, within: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            view = self.view(order_id)
            if view["status"] == status:
                return view
            if time.monotonic() > deadline:
                pytest.fail(f"order {order_id} not {status} within {within} s: {view}")
            time.sleep(0.05)

    def events(self, order_id: str) -> list[str]:
        response = self.api.get("/api/v1/events", params={"order": self.native(order_id)["id"], "limit": 100})
        assert response.status_code == 200, response.text
        return [e["type"] for e in reversed(response.json()["data"])]


@pytest.fixture
def ka_factory(gkassa: KassaServer, grin_net: GrinStandIn) -> Iterator[Callable[..., KAShop]]:
    """Makes merchants wired to this test's Grin stand-in; turns their grin rail off afterwards so
    that later tests' watchers leave them alone."""
    shops: list[KAShop] = []

    def make(configure: bool = True, **merchant_settings: Any) -> KAShop:
        merchant_id, key = gkassa.new_merchant("Grin Shop", **merchant_settings)
        shop = KAShop(
            gkassa,
            grin_net,
            merchant_id,
            key,
            httpx.Client(base_url=gkassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30),
            httpx.Client(base_url=gkassa.base_url, timeout=30),
        )
        if configure:
            shop.configure()
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.api.delete("/api/v1/payment-methods/grin")
        shop.api.close()
        shop.anon.close()


@pytest.fixture
def ka_shop(ka_factory: Callable[..., KAShop]) -> KAShop:
    return ka_factory()


@pytest.fixture
def watching(gkassa: KassaServer) -> Iterator[Watching]:
    watch = Watching(gkassa).start()
    try:
        yield watch
    finally:
        watch.stop()


@pytest.fixture
def shop(kassa: KassaServer, merchant: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    store_id, key = merchant
    monkeypatch.setattr(btcpay, "api_key", key)
    monkeypatch.setattr(btcpay, "host_url", kassa.base_url + "/")
    monkeypatch.setattr(btcpay, "store_id", store_id)
    s = Shop(kassa, store_id, key)
    try:
        yield s
    finally:
        s.close()
