"""The built-in sandbox rail: a tiny pretend chain driven through the API (like a gateway's test mode).

It takes payment in the order's own currency at rate 1; payments and blocks come from
`POST /api/v1/test/payments` and `POST /api/v1/test/blocks` (or the checkout page's test buttons).
It is also the sandbox of a gateway's notification: `notified` reads `{"address", "result"}`
(servebase's dummy gateway sends it through its front); there is nothing to verify, which is why
only test orders are ever paid through this rail. It sends refunds and payouts at once (to `test:…`
addresses), final as soon as they are relayed, with no network fee; a manual payout's "unsigned
transaction" is `test-unsigned:<payout>:<address>:<amount>` and its signature is that text
prefixed with `signed:` (what a merchant's wallet would do, pretended).
"""

from __future__ import annotations

from typing import ClassVar

from kassa.rails.base import (
    Destination,
    DestinationInvalid,
    FormRequest,
    GatewayUnsupported,
    MethodSpec,
    NoKeychain,
    NoSubmissions,
    Notice,
    NoticeInvalid,
    Outgoing,
    PaymentForm,
    PayoutSettings,
    Prepared,
    Quote,
    QuoteRequest,
    RailConfig,
    RailHealth,
    RailSettings,
    SendRequest,
    Unsigned,
    Watcher,
)

SIGNED = "signed:"


class TestRailSettings(PayoutSettings):
    pass


class TestRail(NoSubmissions, NoKeychain):
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

    def spends(self, config: RailConfig) -> bool:
        return True

    async def check_destination(self, config: RailConfig, destination: str) -> str:
        return check_address(destination)

    async def prepare_send(self, config: RailConfig, request: SendRequest) -> Prepared:
        reference = f"test-sent:{request.reference}"
        return Prepared(reference, request.amount, 0, reference, final=True)  # a pretend chain

    async def relay(self, config: RailConfig, prepared: Prepared) -> None:
        return None  # nothing to broadcast: the pretend chain takes it as final

    async def outgoing(self, config: RailConfig, reference: str) -> Outgoing:
        return Outgoing("confirmed", 1) if reference.startswith("test-sent:") else Outgoing("unknown")

    async def prepare_unsigned(self, config: RailConfig, request: SendRequest) -> Unsigned:
        blob = f"test-unsigned:{request.reference}:{request.destination}:{request.amount}"
        return Unsigned(blob, request.amount, 0)

    async def submit_signed(self, config: RailConfig, unsigned: str, signed: str) -> Prepared:
        if signed != SIGNED + unsigned:
            raise DestinationInvalid(
                f"this is not the payout's transaction signed: sign it as {SIGNED}<unsigned>"
            )
        amount = int(unsigned.rsplit(":", 1)[1])
        reference = f"test-sent:{unsigned.split(':', 2)[1]}"
        return Prepared(reference, amount, 0, signed, final=True)

    def notified(self, config: RailConfig, body: dict[str, str]) -> Notice:
        address, result = body.get("address"), body.get("result")
        if not isinstance(address, str) or not address.startswith("test:"):
            raise NoticeInvalid("address must be a test rail address (test:<order id>)")
        if result == "paid":
            return Notice(address, "paid", f"{address}:paid", None)
        if result == "failed":
            return Notice(address, "failed", f"{address}:failed", None, message="declined (test)")
        raise NoticeInvalid("result must be 'paid' or 'failed'")


def check_address(destination: str) -> str:
    """A test rail address: `test:<anything printable>`."""
    if (
        not destination.startswith("test:")
        or not 6 <= len(destination) <= 200
        or not destination.isprintable()
    ):
        raise DestinationInvalid("a test rail address is test:<anything>, e.g. test:customer")
    return destination
