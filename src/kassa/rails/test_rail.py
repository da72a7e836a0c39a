"""The built-in sandbox rail: a tiny pretend chain driven through the API (like a gateway's test mode).

It takes payment in the order's own currency at rate 1; payments and blocks come from
`POST /api/v1/test/payments` and `POST /api/v1/test/blocks` (or the checkout page's test buttons).
"""

from __future__ import annotations

from typing import ClassVar

from kassa.rails.base import (
    Destination,
    MethodSpec,
    NoSubmissions,
    Quote,
    QuoteRequest,
    RailConfig,
    RailHealth,
    RailSettings,
    Watcher,
)


class TestRailSettings(RailSettings):
    pass


class TestRail(NoSubmissions):
    name: ClassVar[str] = "test"
    test: ClassVar[bool] = True
    settings_model: ClassVar[type[RailSettings]] = TestRailSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    __test__ = False  # not a pytest class

    def methods(self, config: RailConfig) -> list[MethodSpec]:
        return [MethodSpec("test", None)]

    async def prepare(
        self, config: RailConfig, request: QuoteRequest, quote: Quote, address: str | None = None
    ) -> Destination:
        address = address or f"test:{request.order_id}"
        return Destination(address=address, payment_uri=f"{address}?amount={quote.amount}")

    def watcher(self, config: RailConfig) -> Watcher | None:
        return None  # driven through the API instead

    async def check(self, config: RailConfig) -> RailHealth:
        return RailHealth(ok=True, details={"kind": "sandbox"})
