"""LibrePay's wire shapes: the invoice request with decimal fiat prices, and the invoice as LibrePay
shows it, amounts as exact JSON numbers (never through a float)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from kassa.compat import body
from kassa.domain.currencies import UnknownCurrency, get_currency
from kassa.domain.money import InvalidMoney, Money
from kassa.domain.orders import refund_due_of
from kassa.errors import InvalidRequest
from kassa.services.orders import CartLine, NewOrder

Url = Annotated[StrictStr, Field(min_length=8, max_length=2000, pattern=r"^https?://[^\s]+$")]


class LPCartItem(BaseModel):
    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    price: Decimal | StrictInt  # a JSON number (or a decimal string), in the invoice's fiat currency
    name: Annotated[StrictStr, Field(min_length=1, max_length=500)]
    image: Url | None = None
    quantity: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = 1

    @field_validator("price", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise ValueError("must be a number such as 12.50")
        if isinstance(value, str):
            try:
                return Decimal(value)
            except InvalidOperation:
                raise ValueError("must be a number such as 12.50") from None
        return value


class LPInvoiceCreate(BaseModel):
    """`POST /invoice/`: fields LibrePay does not know are ignored."""

    model_config = ConfigDict(extra="ignore")

    successUrl: Url  # LibrePay's field names
    cancelUrl: Url
    currency: Annotated[StrictStr, Field(min_length=1, max_length=10)]
    cart: Annotated[list[LPCartItem], Field(min_length=1, max_length=100)]


def parse_body(raw: bytes) -> Any:
    """JSON with every non-integer number kept as an exact Decimal."""
    try:
        return body.loads(raw)
    except body.BodyInvalid as exc:
        raise InvalidRequest(str(exc), code="body_invalid") from None


def minor_units(price: Decimal | int, currency: str, where: str) -> int:
    """An exact price in the currency's minor units; more decimals than the currency has are refused."""
    try:
        return Money.from_decimal(price, currency).amount
    except InvalidMoney as exc:
        raise InvalidRequest(f"{where}: {exc}", param=where) from None


def new_order(body: LPInvoiceCreate) -> NewOrder:
    currency = body.currency.upper()
    try:
        get_currency(currency)
    except UnknownCurrency:
        raise InvalidRequest(f"unknown currency {body.currency!r}", param="currency") from None
    lines = [
        CartLine(
            name=item.name,
            price=minor_units(item.price, currency, f"cart[{i}].price"),
            quantity=item.quantity,
            image=item.image,
        )
        for i, item in enumerate(body.cart)
    ]
    return NewOrder(currency=currency, cart=lines, success_url=body.successUrl, cancel_url=body.cancelUrl)


class Raw(str):
    """JSON text placed as it is (an exact decimal number)."""


def number(amount: int, currency: str) -> Raw:
    """`0.00037` for 37000 satoshi: exact, trailing zeros trimmed."""
    text = Money(amount, currency).to_decimal_string()
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Raw(text)


def dumps(value: Any) -> str:
    """JSON with `Raw` values written as they are."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def methods(order: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"coin": q["method"], "price": number(q["amount"], q["currency"])} for q in order["payment_methods"]
    ]


def expire_date(order: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(order["expires_at"]).timestamp())


def created(order: dict[str, Any]) -> dict[str, Any]:
    return {"methods": methods(order), "selector": order["id"], "expireDate": expire_date(order)}


def invoice(order: dict[str, Any]) -> dict[str, Any]:
    """The invoice: its cart and total, the coins and prices, the chosen coin's address, the status,
    and what is owed back to the customer under LibrePay's rules (the core's `refund_due`)."""
    currency = order["currency"]
    chosen = next((q for q in order["payment_methods"] if q["method"] == order["method"]), None)
    pay_currency = chosen["currency"] if chosen else currency
    owed = max(refund_due_of(order, order["payments"]) - (order["amount_refunded"] if chosen else 0), 0)
    return {
        "selector": order["id"],
        "status": order["status"],
        "exception": order["exception"],
        "currency": currency.lower(),
        "cart": [
            {
                "price": number(line["price"], currency),
                "name": line["name"],
                "image": line["image"],
                "quantity": line["quantity"],
            }
            for line in order["cart"] or []
        ],
        "totalPrice": number(order["amount"], currency),
        "methods": methods(order),
        "paymentMethod": order["method"],
        "receiveAddress": chosen["address"] if chosen else None,
        "paymentUri": chosen["payment_uri"] if chosen else None,
        "amountDue": number(chosen["amount"], pay_currency) if chosen else None,
        "amountReceived": number(order["amount_received"], pay_currency),
        "refundDue": number(owed, pay_currency),
        "expireDate": expire_date(order),
        "timerPaused": order["timer_paused"],
        "successUrl": order["success_url"],
        "cancelUrl": order["cancel_url"],
        "checkoutUrl": order["checkout_url"],
    }
