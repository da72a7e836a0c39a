"""The `newebpay` rail: card (and ATM, convenience store) payments through NewebPay's MPG 2.0 page.

Kassa never sees a card. The payer's browser posts a signed form (`payment_form`) to NewebPay's
page; NewebPay POSTs the outcome to the NotifyURL, which Kassa verifies (`notified`, see `mpg.py`
for the order of the checks) before the core matches it to the stored payment: the merchant, the
order number (the quote's destination, unguessable) and the amount must all agree. Amounts are whole
New Taiwan dollars (TWD has no minor unit in Kassa). NewebPay cannot be reached from the tests: they
use the published test vectors and a loopback stand-in of its page (docs/newebpay.md).
"""

from __future__ import annotations

import re
import time
from typing import Annotated, ClassVar, Final, Literal

from pydantic import Field, StrictBool, StringConstraints

from kassa.errors import InvalidRequest
from kassa.rails.base import (
    Destination,
    FormRequest,
    MethodSpec,
    NoKeychain,
    NoSending,
    NoSubmissions,
    Notice,
    NoticeInvalid,
    PaymentForm,
    Quote,
    QuoteRequest,
    RailConfig,
    RailHealth,
    RailSettings,
    Watcher,
)
from kassa.rails.newebpay import mpg
from kassa.rails.urls import RpcUrl

METHOD: Final = "newebpay"
CURRENCY: Final = "TWD"
PaymentType = Literal[
    "CREDIT",
    "ANDROIDPAY",
    "SAMSUNGPAY",
    "LINEPAY",
    "UNIONPAY",
    "WEBATM",
    "VACC",
    "CVS",
    "BARCODE",
    "ESUNWALLET",
    "TAIWANPAY",
    "CVSCOM",
    "EZPAY",
]
LANGUAGES: Final = {"zh-tw": "zh-tw", "zh-hant": "zh-tw", "zh": "zh-tw", "en": "en", "ja": "jp", "jp": "jp"}
_DESC_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MerchantId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,20}$")]
HashKey = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{32}$")]
HashIv = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{16}$")]


class NewebPaySettings(RailSettings):
    """What a merchant configures (PUT /api/v1/payment-methods/newebpay). `hash_key` and `hash_iv`
    are secrets: stored encrypted, shown masked."""

    merchant_id: MerchantId
    """The store's MerchantID (商店代號), e.g. MS12345678."""
    hash_key: HashKey
    """The store's HashKey: 32 characters."""
    hash_iv: HashIv
    """The store's HashIV: 16 characters."""
    testing: StrictBool = False
    """True: NewebPay's test environment (ccore.newebpay.com); false: production (core.newebpay.com)."""
    gateway_url: RpcUrl | None = None
    """Post the form here instead (a proxy, or the tests' loopback stand-in of NewebPay's page)."""
    item_desc: Annotated[str, Field(min_length=1, max_length=50)] = "Order"
    """ItemDesc when the order has no description."""
    payment_types: list[PaymentType] = Field(default_factory=list, max_length=20)
    """Which payment types the page offers (e.g. ["CREDIT", "VACC"]); empty: what the store enabled."""


def settings_of(config: RailConfig) -> NewebPaySettings:
    return NewebPaySettings.model_validate(config.settings)


def _item_desc(request: FormRequest, default: str) -> str:
    text = _DESC_CONTROL.sub(" ", (request.description or "").strip())
    return (text or default)[: mpg.MAX_ITEM_DESC_LENGTH]


class NewebPayRail(NoSubmissions, NoSending, NoKeychain):
    name: ClassVar[str] = "newebpay"
    test: ClassVar[bool] = False  # the test environment is NewebPay's; Kassa's orders are real ones
    settings_model: ClassVar[type[RailSettings]] = NewebPaySettings
    secret_fields: ClassVar[frozenset[str]] = frozenset({"hash_key", "hash_iv"})
    gateway_page: ClassVar[bool] = True

    def methods(self, config: RailConfig) -> list[MethodSpec]:
        return [MethodSpec(METHOD, CURRENCY)]

    async def prepare(
        self, config: RailConfig, request: QuoteRequest, quote: Quote, address: str | None = None
    ) -> Destination:
        if request.currency != CURRENCY:
            # Priced in TWD the amount never changes with a rate: a trade open at NewebPay always
            # matches the stored amount when its notification comes.
            raise InvalidRequest(
                f"NewebPay takes orders priced in TWD; this one is in {request.currency}", param="currency"
            )
        if quote.amount > mpg.MAX_AMOUNT:
            raise InvalidRequest(
                f"NewebPay takes at most {mpg.MAX_AMOUNT:,} TWD in one payment", param="amount"
            )
        return Destination(address=address or mpg.new_merchant_order_no())

    def watcher(self, config: RailConfig) -> Watcher | None:
        return None  # NewebPay pushes its notifications

    async def check(self, config: RailConfig) -> RailHealth:
        settings = settings_of(config)
        url = settings.gateway_url or (
            mpg.TEST_GATEWAY_URL if settings.testing else mpg.PRODUCTION_GATEWAY_URL
        )
        return RailHealth(
            ok=True,
            details={
                "kind": "gateway",
                "environment": "test" if settings.testing else "production",
                "gateway_url": url,
                "merchant_id": settings.merchant_id,
                "note": "NewebPay has no status call without a trade; settings are valid",
            },
        )

    def payment_form(self, config: RailConfig, request: FormRequest) -> PaymentForm:
        settings = settings_of(config)
        if request.currency != CURRENCY:
            raise InvalidRequest(f"NewebPay takes TWD, not {request.currency}", param="currency")
        extra: dict[str, str | int] = {name: 1 for name in settings.payment_types}
        language = LANGUAGES.get((request.language or "").lower())
        if language:
            extra["LangType"] = language
        try:
            url, fields = mpg.checkout_form(
                merchant_id=settings.merchant_id,
                hash_key=settings.hash_key,
                hash_iv=settings.hash_iv,
                merchant_order_no=request.destination,
                amount=request.amount,
                item_desc=_item_desc(request, settings.item_desc),
                email=request.email,
                notify_url=request.notify_url,
                return_url=request.return_url,
                client_back_url=request.back_url,
                timestamp=int(time.time()),
                testing=settings.testing,
                extra=extra,
            )
        except mpg.NewebPayError as exc:
            raise InvalidRequest(str(exc)) from None
        return PaymentForm(settings.gateway_url or url, "POST", fields)

    def notified(self, config: RailConfig, body: dict[str, str]) -> Notice:
        settings = settings_of(config)
        try:
            note = mpg.verify_notification(
                body, merchant_id=settings.merchant_id, hash_key=settings.hash_key, hash_iv=settings.hash_iv
            )
        except mpg.NotificationRejected as exc:
            raise NoticeInvalid(str(exc)) from None
        details = {
            "status": note.status,
            "trade_no": note.trade_no,
            "payment_type": note.payment_type,
            "pay_time": note.pay_time,
        }
        outcome: Literal["paid", "failed"] = "paid" if note.status == "SUCCESS" else "failed"
        # One MerchantOrderNo is one trade at NewebPay: it is the payment's reference.
        return Notice(
            note.merchant_order_no, outcome, note.merchant_order_no, note.amount, note.message, details
        )
