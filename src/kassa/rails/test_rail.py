"""The built-in sandbox rail: a tiny pretend chain driven through the API (like a gateway's test mode).

It quotes in the order's own currency at rate 1; payments and blocks come from
`POST /api/v1/test/payments` and `POST /api/v1/test/blocks` (or the checkout page's test buttons).
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from kassa.rails.base import Destination, Quote, QuoteRequest


class TestRail:
    name: ClassVar[str] = "test"
    test: ClassVar[bool] = True
    __test__ = False  # not a pytest class

    def methods(self) -> list[str]:
        return ["test"]

    async def quote(self, request: QuoteRequest, method: str) -> Quote:
        return Quote(
            method="test",
            currency=request.currency,
            amount=request.amount,
            rate=Decimal(1),
            expires_at=request.expires_at,
        )

    async def prepare(self, request: QuoteRequest, quote: Quote) -> Destination:
        address = f"test:{request.order_id}"
        return Destination(address=address, payment_uri=f"{address}?amount={quote.amount}")
