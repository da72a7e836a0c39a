"""A merchant with one chain rail, as its backend sees it through Kassa's API: the rails' end-to-end
tests (Monero, Bitcoin) share it and add how they configure the rail."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import pytest

from tests.support.server import KassaServer


@dataclass
class RailShop:
    server: KassaServer
    merchant_id: str
    api: httpx.Client

    method: ClassVar[str]  # the payment method its orders ask for

    def order(self, **body: Any) -> dict[str, Any]:
        payload = {"amount": 1000, "currency": "USD", "payment_methods": [self.method], **body}
        response = self.api.post("/api/v1/orders", json=payload)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def get(self, order_id: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/orders/{order_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait(
        self, order_id: str, what: str, done: Callable[[dict[str, Any]], bool], within: float = 10.0
    ) -> tuple[dict[str, Any], float]:
        """Poll the order until `done`; returns it and the seconds it took."""
        start = time.monotonic()
        while True:
            order = self.get(order_id)
            if done(order):
                return order, time.monotonic() - start
            if time.monotonic() - start > within:
                pytest.fail(f"order {order_id} not {what} within {within} s: {json.dumps(order, indent=1)}")
            time.sleep(0.03)

    def wait_status(
        self, order_id: str, status: str, within: float = 10.0, exception: str | None = None
    ) -> dict[str, Any]:
        order, _ = self.wait(
            order_id,
            f"{status}/{exception}",
            lambda o: o["status"] == status and (exception is None or o["exception"] == exception),
            within,
        )
        return order

    def events(self, order_id: str) -> list[str]:
        response = self.api.get("/api/v1/events", params={"order": order_id, "limit": 100})
        assert response.status_code == 200, response.text
        return [e["type"] for e in reversed(response.json()["data"])]
