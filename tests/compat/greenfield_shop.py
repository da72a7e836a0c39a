"""A merchant seen as a BTCPay store, for the Greenfield tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.server import KassaServer


class Shop:
    """One merchant seen as a BTCPay store: the SDK configured for it, a Greenfield HTTP client (token
    auth) and Kassa's native API (to drive the test rail)."""

    def __init__(self, kassa: KassaServer, store_id: str, key: str) -> None:
        self.kassa = kassa
        self.store_id = store_id
        self.key = key
        self.gf = httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"token {key}"}, timeout=30)
        self.native = httpx.Client(
            base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def close(self) -> None:
        self.gf.close()
        self.native.close()

    @property
    def store(self) -> str:
        return f"/api/v1/stores/{self.store_id}"

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        answer = self.gf.get(f"{self.store}/invoices/{invoice_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def create(self, **body: Any) -> dict[str, Any]:
        answer = self.gf.post(f"{self.store}/invoices", json={"amount": "10.50", "currency": "USD", **body})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def pay(self, invoice_id: str, amount: int) -> None:
        answer = self.native.post("/api/v1/test/payments", json={"order": invoice_id, "amount": amount})
        assert answer.status_code == 201, answer.text

    def mine(self, count: int = 1) -> None:
        answer = self.native.post("/api/v1/test/blocks", json={"count": count})
        assert answer.status_code == 200, answer.text

    def webhook(self, url: str, **body: Any) -> dict[str, Any]:
        answer = self.gf.post(f"{self.store}/webhooks", json={"url": url, **body})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())
