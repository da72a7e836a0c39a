"""Kassa servers configured as @servebase/payment's backend (dummy and NewebPay), and a shop client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.newebpay_stand_in import HASH_IV, HASH_KEY, MERCHANT_ID, NewebPayStandIn
from tests.support.server import KassaServer


@dataclass
class ServebaseShop:
    server: KassaServer
    merchant_id: str
    key: str
    api: httpx.Client  # the shop's backend: the merchant's API key
    anon: httpx.Client  # the customer's browser

    def sign(self, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
        response = self.api.post("/pay/sign", json={"payload": payload, **extra})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def check(self, slug: str) -> dict[str, Any]:
        response = self.anon.post("/pay/check", json={"payload": {"slug": slug}})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def order(self, slug: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/orders/{slug}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def events(self, slug: str) -> list[str]:
        response = self.api.get("/api/v1/events", params={"order": slug, "limit": 100})
        assert response.status_code == 200, response.text
        return [e["type"] for e in response.json()["data"]]


def _shop(kassa: KassaServer, name: str, payment: dict[str, Any]) -> Iterator[ServebaseShop]:
    merchant_id, key = kassa.new_merchant(name)
    server = kassa.sibling(payment={"merchant": merchant_id, **payment}).start()
    api = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    anon = httpx.Client(base_url=server.base_url, timeout=30)
    try:
        yield ServebaseShop(server, merchant_id, key, api, anon)
    finally:
        api.close()
        anon.close()
        server.stop()


@pytest.fixture(scope="module")
def dummy_shop(kassa: KassaServer) -> Iterator[ServebaseShop]:
    yield from _shop(kassa, "Dummy Shop", {"gateway": "dummy", "gateways": {"dummy": {}}})


@pytest.fixture(scope="module")
def newebpay() -> Iterator[NewebPayStandIn]:
    with NewebPayStandIn() as gateway:
        yield gateway


def newebpay_payment(gateway: NewebPayStandIn, **extra: Any) -> dict[str, Any]:
    return {
        "gateway": "newebpay",
        "gateways": {
            "dummy": {},
            "newebpay": {
                "testing": True,
                "MerchantID": MERCHANT_ID,
                "hashkey": HASH_KEY,
                "hashiv": HASH_IV,
                "gateway_url": gateway.gateway_url,
                **extra,
            },
        },
    }


@pytest.fixture(scope="module")
def newebpay_shop(kassa: KassaServer, newebpay: NewebPayStandIn) -> Iterator[ServebaseShop]:
    yield from _shop(kassa, "NewebPay Shop", newebpay_payment(newebpay))
