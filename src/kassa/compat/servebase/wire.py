"""@servebase/payment's wire shapes: its request bodies, its states and its error objects.

Errors are servebase's `lderror` objects, `{"name": "lderror", "id": N, "message": ...}`, with HTTP
status 490 (servebase's error handler sends every lderror so); ids as its payment module uses
them: 1020 a bad sign request, 400 a notification it cannot take, 404 nothing there, 1000 no
permission.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from fastapi import Response

from kassa.compat import body
from kassa.domain.currencies import get_currency
from kassa.domain.money import InvalidMoney, Money
from kassa.domain.orders import OrderStatus, PaymentStatus

LDERROR_STATUS: Final = 490
BAD_REQUEST: Final = 1020
PERMISSION: Final = 1000
NOT_FOUND: Final = 404
BAD_NOTICE: Final = 400
MAX_TEXT: Final = 500
MAX_DIGITS: Final = 30
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_SLUG = re.compile(r"^ord_[A-Za-z0-9]{1,60}$")


class ServebaseError(Exception):
    def __init__(self, ident: int, message: str) -> None:
        super().__init__(message)
        self.ident = ident
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"name": "lderror", "id": self.ident, "message": self.message}


def parse_json(raw: bytes) -> Any:
    try:
        return body.loads(raw)
    except body.BodyInvalid as exc:
        raise ServebaseError(BAD_REQUEST, str(exc)) from None


def text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ServebaseError(BAD_REQUEST, f"payload.{name} must be a string")
    if "\x00" in value or len(value) > MAX_TEXT:
        raise ServebaseError(BAD_REQUEST, f"payload.{name} must be text of at most {MAX_TEXT} characters")
    return value


def amount(payload: dict[str, Any], currency: str) -> int:
    """`payload.amount` ("100", or a number) in the currency's minor units, exactly."""
    value = payload.get("amount")
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ServebaseError(BAD_REQUEST, 'payload.amount must be a string such as "100"')
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise ServebaseError(BAD_REQUEST, "payload.amount is not a number") from None
    if not number.is_finite() or number <= 0:
        raise ServebaseError(BAD_REQUEST, "payload.amount must be a positive number")
    try:
        minor = Money.from_decimal(number, currency).amount
    except InvalidMoney as exc:
        raise ServebaseError(BAD_REQUEST, f"payload.amount {exc}") from None
    if minor >= 10**MAX_DIGITS:
        raise ServebaseError(BAD_REQUEST, "payload.amount is too large")
    return minor


def email(payload: dict[str, Any]) -> str | None:
    value = text(payload, "email")
    if value is not None and _EMAIL.fullmatch(value) is None:
        raise ServebaseError(BAD_REQUEST, "payload.email is not an email address")
    return value


def is_slug(value: object) -> bool:
    return isinstance(value, str) and _SLUG.fullmatch(value) is not None


def state(order: dict[str, Any]) -> str:
    """A payment record's state: pending, complete, failed, expired, canceled or invalid."""
    status = order["status"]
    if status == OrderStatus.PAID.value:
        return "complete"
    if status in (OrderStatus.OPEN.value, OrderStatus.PROCESSING.value):
        payments = order.get("payments") or []
        if payments and all(p["status"] == PaymentStatus.REJECTED.value for p in payments):
            return "failed"  # the gateway declined it; servebase's client asks again with a new slug
        return "pending"
    return str(status)


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status, media_type="application/json", headers={"Cache-Control": "no-store"})


def plain(minor: int, currency: str) -> str:
    """An amount as servebase writes one: a plain decimal string ("100", "12.50")."""
    return format(Decimal(minor).scaleb(-get_currency(currency).exponent), "f")
