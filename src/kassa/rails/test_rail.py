"""The built-in sandbox rail: a tiny pretend chain driven through the API (like a gateway's test mode).

It takes payment in the order's own currency at rate 1; payments and blocks come from
`POST /api/v1/test/payments` and `POST /api/v1/test/blocks` (or the checkout page's test buttons).
It is also the sandbox of a gateway's notification: `notified` reads `{"address", "result"}`
(servebase's dummy gateway sends it through its front); there is nothing to verify, which is why
only test orders are ever paid through this rail. It sends refunds at once (to `test:…` addresses).
"""

from __future__ import annotations

from typing import ClassVar

from kassa.rails.base import (
    Destination,
    DestinationInvalid,
    FormRequest,
    GatewayUnsupported,
    MethodSpec,
    NoSubmissions,
    Notice,
    NoticeInvalid,
    PaymentForm,
    Quote,
    QuoteRequest,
    RailConfig,
    RailHealth,
    RailSettings,
    SendRequest,
    Sent,
    Watcher,
)


class TestRailSettings(RailSettings):
    pass


class TestRail(NoSubmissions):
    name: ClassVar[str] = "test"
    test: ClassVar[bool] = True
    settings_model: ClassVar[type[RailSettings]] = TestRailSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    gateway_page: ClassVar[bool] = False  # its "gateway page" is the checkout page's test panel
    can_send: ClassVar[bool] = True
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

    def payment_form(self, config: RailConfig, request: FormRequest) -> PaymentForm:
        raise GatewayUnsupported("the test rail's page is the checkout page itself")

    def check_destination(self, config: RailConfig, destination: str) -> str:
        if (
            not destination.startswith("test:")
            or not 6 <= len(destination) <= 200
            or not destination.isprintable()
        ):
            raise DestinationInvalid("a test rail address is test:<anything>, e.g. test:customer")
        return destination

    async def send(self, config: RailConfig, request: SendRequest) -> Sent:
        return Sent(f"test-sent:{request.reference}", confirmed=True)  # a pretend chain: final at once

    def notified(self, config: RailConfig, body: dict[str, str]) -> Notice:
        address, result = body.get("address"), body.get("result")
        if not isinstance(address, str) or not address.startswith("test:"):
            raise NoticeInvalid("address must be a test rail address (test:<order id>)")
        if result == "paid":
            return Notice(address, "paid", f"{address}:paid", None)
        if result == "failed":
            return Notice(address, "failed", f"{address}:failed", None, message="declined (test)")
        raise NoticeInvalid("result must be 'paid' or 'failed'")
