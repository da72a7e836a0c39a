"""Wire shapes of the native API. Requests are strict: unknown fields are refused."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

from kassa.domain.currencies import get_currency

MinorUnits = Annotated[int, Strict(), Field(ge=0, lt=2**256, description="An amount in minor units.")]
PositiveMinorUnits = Annotated[int, Strict(), Field(gt=0, lt=2**256)]


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    return value


HttpUrl = Annotated[str, Field(min_length=8, max_length=2000), AfterValidator(_http_url)]
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


def _currency(value: str) -> str:
    get_currency(value)  # UnknownCurrency is a ValueError: becomes a 400 on `currency`
    return value.upper()


CurrencyCode = Annotated[str, Field(min_length=3, max_length=5, examples=["USD"]), AfterValidator(_currency)]


class Strict_(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CartLineIn(Strict_):
    name: str = Field(min_length=1, max_length=500)
    price: MinorUnits
    quantity: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = 1
    image: HttpUrl | None = None


class OrderCreate(Strict_):
    """Give `amount` and `currency`, or a `cart` (whose total becomes the amount) and `currency`."""

    amount: PositiveMinorUnits | None = None
    currency: CurrencyCode
    cart: list[CartLineIn] | None = Field(default=None, max_length=100)
    order_id: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    description: str | None = Field(default=None, max_length=1000)
    email: Email | None = None
    confirmations: Annotated[int, Strict(), Field(ge=0, le=1000)] | None = None
    expires_in: Annotated[int, Strict(), Field(ge=1, le=30 * 86400)] | None = None
    success_url: HttpUrl | None = None
    cancel_url: HttpUrl | None = None
    callback_url: HttpUrl | None = None
    fulfillment_url: HttpUrl | None = None
    session_id: str | None = Field(default=None, min_length=1, max_length=200)
    payment_methods: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = Field(
        default=None, max_length=20
    )
    metadata: dict[Annotated[str, Field(max_length=40)], Any] = Field(default_factory=dict, max_length=50)
    locale: str | None = Field(
        default=None,
        min_length=2,
        max_length=20,
        pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$",
        description="The customer's language (BCP 47, e.g. de or zh-TW).",
    )
    auto_redirect: bool = Field(
        default=True, description="Send the customer to success_url by itself once the order is paid."
    )


class MethodChoice(Strict_):
    method: str = Field(min_length=1, max_length=40)


class TestPaymentCreate(Strict_):
    order: str = Field(min_length=1, max_length=200, description="The order's Kassa id or your order_id.")
    amount: PositiveMinorUnits


class TestBlocksCreate(Strict_):
    count: Annotated[int, Strict(), Field(ge=1, le=10_000)] = 1


class MerchantSettings(Strict_):
    email: Email | None = None
    default_confirmations: Annotated[int, Strict(), Field(ge=0, le=1000)] | None = None
    invoice_lifetime: Annotated[int, Strict(), Field(ge=60, le=30 * 86400)] | None = None
    payment_tolerance_bps: Annotated[int, Strict(), Field(ge=0, le=10_000)] | None = None
    monitoring_window: Annotated[int, Strict(), Field(ge=60, le=90 * 86400)] | None = None
    late_payment_policy: Literal["accept", "refund"] | None = None
    callback_url: HttpUrl | None = None
    notify_paid_email: bool | None = Field(default=None, description="Email the merchant about paid orders.")
    quote_at: Literal["creation", "method_choice"] | None = Field(
        default=None,
        description="creation: each method's quote holds until its deadline; method_choice: choosing a "
        "method takes a fresh rate (while nothing has been paid).",
    )
    password: str | None = Field(
        default=None,
        min_length=12,
        max_length=256,
        description="Write-only: the password for HTTP Basic (merchant id as the user) on the "
        "KnockturnAllee front; null removes it.",
    )
    withdrawal_policy: Literal["immediate", "daily", "manual"] | None = Field(
        default=None, description="How received money goes to the merchant's wallet (see docs)."
    )
    withdrawal_url: HttpUrl | None = Field(
        default=None, description="The merchant wallet's HTTPS endpoint, for automatic withdrawals."
    )
    refund_policy: Literal["approve", "automatic"] | None = Field(
        default=None,
        description="Refunds Kassa makes by rule (underpaid, late, overpaid): wait for approval, or send.",
    )
    payout_hour: Annotated[int, Strict(), Field(ge=0, le=23)] | None = Field(
        default=None, description="The hour (UTC) from which the daily payout is made."
    )


class MerchantCreate(MerchantSettings):
    name: str = Field(min_length=1, max_length=200)


class MerchantUpdate(MerchantSettings):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    rails: dict[Annotated[str, Field(max_length=40)], bool] | None = Field(
        default=None, description='Turn rails on or off, e.g. {"test": false}.'
    )


class ApiKeyCreate(Strict_):
    scopes: list[str] | None = Field(default=None, max_length=20)
    name: str | None = Field(default=None, max_length=200)


# ----- responses (documented in OpenAPI; the views in services/views.py produce them) --------


class ErrorBody(BaseModel):
    type: str
    code: str
    message: str
    param: str | None


class ErrorResponse(BaseModel):
    error: ErrorBody


class QuoteOut(BaseModel):
    method: str
    rail: str
    currency: str
    amount: int
    rate: str
    address: str | None
    payment_uri: str | None
    note: str | None = Field(description="The rail's line for the payer, e.g. the chain to pay on.")
    expires_at: str


class PaymentOut(BaseModel):
    id: str
    object: Literal["payment"]
    order: str
    rail: str
    method: str
    amount: int
    currency: str
    reference: str
    confirmations: int
    status: Literal["pending", "confirmed", "rejected"]
    late: bool
    replaceable: bool = Field(
        description="unconfirmed and signalling that the payer may replace it (Bitcoin's BIP 125 RBF)"
    )
    test: bool
    seen_at: str
    confirmed_at: str | None
    rejected_at: str | None


class CartLineOut(BaseModel):
    name: str
    price: int
    quantity: int
    image: str | None


class OrderOut(BaseModel):
    id: str
    object: Literal["order"]
    order_id: str | None
    status: Literal["open", "processing", "paid", "expired", "canceled", "invalid"]
    exception: Literal["underpaid", "overpaid", "paid_late", "marked"] | None = Field(
        description="marked: settled or declared invalid by the merchant (Greenfield's mark status)."
    )
    amount: int
    currency: str
    cart: list[CartLineOut] | None
    description: str | None
    email: str | None
    confirmations: int
    expires_at: str
    timer_paused: bool
    timer_remaining: int | None = Field(
        description="Seconds left on the paused expiry timer, while processing."
    )
    late: bool = Field(description="Money arrived after the order expired.")
    tolerance_bps: int = Field(description="How far short a payment may fall and still pay (basis points).")
    monitoring_window: int = Field(description="Seconds a payment may take to become final once seen.")
    late_payment_policy: Literal["accept", "refund"] = Field(
        description="Fixed at creation from the merchant's setting: whether late money pays the order."
    )
    checkout_url: str
    success_url: str | None
    cancel_url: str | None
    callback_url: str | None
    fulfillment_url: str | None
    session_id: str | None
    h_contract: str = Field(
        description="Hash of the order's terms (SHA-512, Crockford base32, 103 characters): with the "
        "order id, what GNU Taler's /public/poll-payment asks for."
    )
    metadata: dict[str, Any]
    method: str | None
    payment_methods: list[QuoteOut]
    payment_currency: str | None
    amount_due: int | None
    amount_received: int
    amount_confirmed: int
    amount_refunded: int
    payments: list[PaymentOut]
    test: bool
    archived: bool = Field(description="Archived orders are left out of Greenfield's invoice lists.")
    locale: str | None = Field(description="The customer's language, when the order names it (BCP 47).")
    auto_redirect: bool = Field(description="The checkout sends the customer to success_url once paid.")
    version: int = Field(description="Bumps on every change; the ETag is built from it.")
    created_at: str
    updated_at: str
    paid_at: str | None
    closed_at: str | None


class OrderList(BaseModel):
    object: Literal["list"]
    data: list[OrderOut]
    has_more: bool


class TestPaymentOut(BaseModel):
    payment: PaymentOut
    order: OrderOut


class TestBlocksOut(BaseModel):
    object: Literal["test_blocks"]
    count: int
    payments_updated: int


class RailSwitch(BaseModel):
    rail: str
    enabled: bool


class MerchantOut(BaseModel):
    id: str
    object: Literal["merchant"]
    name: str
    email: str | None
    default_confirmations: int
    invoice_lifetime: int
    payment_tolerance_bps: int
    monitoring_window: int
    late_payment_policy: Literal["accept", "refund"]
    callback_url: str | None
    notify_paid_email: bool
    quote_at: Literal["creation", "method_choice"]
    has_password: bool
    withdrawal_policy: Literal["immediate", "daily", "manual"]
    withdrawal_url: str | None
    refund_policy: Literal["approve", "automatic"]
    payout_hour: int
    rails: list[RailSwitch]
    created_at: str


class ApiKeyOut(BaseModel):
    id: str
    object: Literal["api_key"]
    secret: str | None = Field(default=None, description="Shown once, on creation.")
    prefix: str | None = None
    scopes: list[str]
    merchant: str | None = None
    created_at: str
    revoked_at: str | None = None


class MerchantCreated(BaseModel):
    merchant: MerchantOut
    api_key: ApiKeyOut


class MerchantList(BaseModel):
    object: Literal["list"]
    data: list[MerchantOut]
    has_more: bool


class ApiKeyList(BaseModel):
    object: Literal["list"]
    data: list[ApiKeyOut]
    has_more: bool


class UserCreate(Strict_):
    email: Email
    password: str = Field(
        min_length=10, max_length=200, description="Write-only; stored as an argon2id hash."
    )
    name: str | None = Field(default=None, max_length=200)


class UserUpdate(Strict_):
    disabled: bool = Field(description="A disabled user cannot sign in; their sessions end at once.")


class UserOut(BaseModel):
    id: str
    object: Literal["user"]
    merchant: str
    email: str
    name: str | None
    totp: bool = Field(description="Whether a TOTP code is asked at sign-in.")
    disabled: bool
    created_at: str
    last_sign_in_at: str | None


class UserList(BaseModel):
    object: Literal["list"]
    data: list[UserOut]
    has_more: bool


class Health(BaseModel):
    status: str
    details: dict[str, Any] = Field(default_factory=dict)


# ----- events and webhooks --------------------------------------------------------------------


class WebhookEndpointCreate(Strict_):
    url: HttpUrl
    event_types: list[Annotated[str, Field(max_length=60)]] = Field(
        default_factory=lambda: ["*"], max_length=50
    )
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True


class WebhookEndpointUpdate(Strict_):
    url: HttpUrl | None = None
    event_types: list[Annotated[str, Field(max_length=60)]] | None = Field(default=None, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class SecretRotation(Strict_):
    overlap_seconds: Annotated[int, Strict(), Field(ge=0, le=7 * 86400)] = 86400


class Redelivery(Strict_):
    endpoint: str | None = Field(default=None, max_length=40, description="Only to this endpoint.")


class WebhookEndpointOut(BaseModel):
    id: str
    object: Literal["webhook_endpoint"]
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: str | None
    format: Literal["kassa", "greenfield"] = Field(
        description="kassa: Standard Webhooks; greenfield: BTCPay's bodies and BTCPay-Sig (made through "
        "the Greenfield front, docs/compat/greenfield.md)."
    )
    options: dict[str, Any] | None = Field(description="The format's own settings.")
    previous_secret_expires_at: str | None
    created_at: str
    updated_at: str
    secret: str | None = Field(default=None, description="Shown once: on creation and on rotation.")


class WebhookEndpointList(BaseModel):
    object: Literal["list"]
    data: list[WebhookEndpointOut]
    has_more: bool


class EventOut(BaseModel):
    id: str
    object: Literal["event"]
    type: str
    created_at: str
    order: str | None
    object_type: str
    object_id: str
    sequence: int
    test: bool
    data: dict[str, Any]


class EventList(BaseModel):
    object: Literal["list"]
    data: list[EventOut]
    has_more: bool


class AttemptOut(BaseModel):
    attempted_at: str
    status_code: int | None
    duration_ms: int
    error: str | None
    response_excerpt: str | None


class DeliveryOut(BaseModel):
    id: str
    object: Literal["delivery"]
    event: str
    event_type: str
    endpoint: str | None
    url: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: list[AttemptOut]
    next_attempt_at: str | None
    created_at: str
    completed_at: str | None


class DeliveryList(BaseModel):
    object: Literal["list"]
    data: list[DeliveryOut]
    has_more: bool


class CallbackSecretOut(BaseModel):
    object: Literal["callback_secret"]
    secret: str


# ----- payment methods (rails) ------------------------------------------------------------------


class PaymentMethodOut(BaseModel):
    object: Literal["payment_method"]
    rail: str
    enabled: bool
    test: bool
    settings: dict[str, Any] = Field(description="Secret settings read back as ********.")
    secret_fields: list[str]
    updated_at: str


class PaymentMethodList(BaseModel):
    object: Literal["list"]
    data: list[PaymentMethodOut]
    has_more: bool


class RailCheckOut(BaseModel):
    object: Literal["rail_check"]
    rail: str
    ok: bool
    details: dict[str, Any]


# ----- the ledger ----------------------------------------------------------------------------------


class BalanceAccounts(BaseModel):
    """Every account of the merchant in one currency: signed sums of entries in minor units."""

    incoming: int = Field(description="minus what came in through the rails and was not sent back")
    balance: int = Field(description="what the merchant is owed")
    refunds_payable: int
    fees: int
    payouts_in_flight: int
    paid_out: int
    network_fees: int


class BalanceOut(BaseModel):
    object: Literal["balance"]
    currency: str
    test: bool
    available: int = Field(description="the `balance` account: what the merchant is owed now")
    accounts: BalanceAccounts


class BalanceList(BaseModel):
    object: Literal["list"]
    data: list[BalanceOut]


class LedgerEntryOut(BaseModel):
    id: str
    object: Literal["ledger_entry"]
    posting: str = Field(description="the posting (lpo_…) this entry belongs to")
    key: str = Field(description="the fact it records, e.g. payment:pay_…:confirmed; posted once")
    kind: str
    account: str
    currency: str
    amount: int = Field(description="positive: into the account; negative: out of it")
    order: str | None
    test: bool
    created_at: str


class LedgerEntryList(BaseModel):
    object: Literal["list"]
    data: list[LedgerEntryOut]
    has_more: bool


# ----- refunds -------------------------------------------------------------------------------------


class RefundCreate(Strict_):
    amount: PositiveMinorUnits = Field(description="in the minor units of the currency the order was paid in")
    currency: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{2,10}$")] | None = Field(
        default=None, description="the currency the order was paid in (checked when given)"
    )
    reason: Annotated[str, Field(max_length=500)] | None = None
    destination: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="where to send it (an address the rail checks); none: to be asked for"
    )


class RefundSent(Strict_):
    reference: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="the id of the transaction that sent it"
    )


class RefundOut(BaseModel):
    id: str
    object: Literal["refund"]
    order: str
    amount: int
    currency: str
    method: str
    rail: str
    reason: str | None
    origin: str
    approved: bool
    status: Literal["pending_destination", "pending", "sent", "confirmed", "failed", "canceled"]
    destination: str | None
    destination_url: str | None = Field(
        description="while the address is unknown: the customer's link to give it (signed, expiring)"
    )
    reference: str | None
    received: int | None = Field(description="what the customer got: the amount less the network's fee")
    network_fee: int | None = Field(description="the network's fee, taken from the amount (Kassa sent it)")
    failure: str | None
    test: bool
    created_at: str
    updated_at: str
    sent_at: str | None
    confirmed_at: str | None


class RefundList(BaseModel):
    object: Literal["list"]
    data: list[RefundOut]
    has_more: bool


# ----- payouts -------------------------------------------------------------------------------------


class PayoutCreate(Strict_):
    rail: Annotated[str, Field(min_length=1, max_length=40)] = Field(
        description="the rail whose wallet pays, e.g. monero"
    )
    currency: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{2,10}$")] | None = Field(
        default=None,
        description="the balance's currency; only needed when the rail takes several (the test rail)",
    )
    amount: PositiveMinorUnits | None = Field(
        default=None, description="minor units taken from the balance; default: all of the balance"
    )
    destination: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="where it goes; default: the rail's payout_address"
    )
    unsigned: bool = Field(
        default=False,
        description="build the transaction for your own wallet to sign (POST /payouts/{id}/signed)",
    )


class PayoutSigned(Strict_):
    signed_tx: Annotated[str, Field(min_length=1, max_length=2_000_000)] = Field(
        description="the unsigned_tx as your wallet signed it"
    )


class PayoutOut(BaseModel):
    id: str
    object: Literal["payout"]
    rail: str
    currency: str
    amount: int = Field(description="taken from the balance, fee included")
    fee: int = Field(description="the operator's fee, out of the amount")
    received: int | None = Field(description="what the destination gets: amount less both fees")
    network_fee: int | None
    destination: str
    origin: Literal["manual", "immediate", "daily"]
    period: str | None = Field(description="a daily payout's day (UTC)")
    status: Literal["awaiting_signature", "sending", "sent", "confirmed", "failed", "canceled"]
    reference: str | None = Field(description="the transaction's id")
    unsigned_tx: str | None = Field(description="awaiting_signature: the transaction to sign")
    failure: str | None
    test: bool
    created_at: str
    updated_at: str
    sent_at: str | None
    confirmed_at: str | None


class PayoutList(BaseModel):
    object: Literal["list"]
    data: list[PayoutOut]
    has_more: bool
