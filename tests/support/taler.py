"""A shop that takes the test rail and asks GNU Taler's `/public/poll-payment` about its orders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

POLL = "/public/poll-payment"
FULFILLMENT = "https://shop.example/articles/taler"


@dataclass
class TalerShop:
    api: httpx.Client  # the shop's backend (its API key)
    anon: httpx.Client  # the customer's browser: no credentials

    def create(self, **fields: Any) -> dict[str, Any]:
        response = self.api.post("/api/v1/orders", json={"amount": 500, "currency": "USD", **fields})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def native(self, ref: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/orders/{ref}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def poll(self, order: dict[str, Any], **params: Any) -> httpx.Response:
        """By the merchant's order id when it has one, else by Kassa's."""
        query = {"order_id": order["order_id"] or order["id"], "h_contract": order["h_contract"], **params}
        return self.anon.get(POLL, params={k: v for k, v in query.items() if v is not None})

    def answer(self, order: dict[str, Any], **params: Any) -> dict[str, Any]:
        response = self.poll(order, **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return dict(response.json())

    def send(self, order: dict[str, Any]) -> None:
        """The customer's payment enters the test rail's pool: the order is processing."""
        response = self.api.post(
            "/api/v1/test/payments", json={"order": order["id"], "amount": order["amount"]}
        )
        assert response.status_code == 201, response.text

    def confirm(self) -> None:
        response = self.api.post("/api/v1/test/blocks", json={"count": 1})
        assert response.status_code == 200, response.text

    def pay(self, order: dict[str, Any]) -> None:
        self.send(order)
        self.confirm()
        assert self.native(order["id"])["status"] == "paid"


def unpaid(order: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"paid": False, "taler_pay_uri": order["checkout_url"], **extra}


PAID = {"paid": True, "refunded": False}
