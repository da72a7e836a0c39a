"""Greenfield's wire format: its errors, its invoice request read into a `NewOrder`, and Kassa's
orders, merchants and keys written as BTCPay's InvoiceData, StoreData and ApiKeyData.

Shapes follow BTCPay Server 2.x (docs/compat/greenfield.md): decimal amounts are JSON strings,
times are unix seconds, validation errors are 422 `[{"path", "message"}]`, other errors
`{"code", "message"}`. A payment method keeps Kassa's name (`XMR`, `BTC`, `test`); BTCPay's
spellings of an on-chain method (`BTC-CHAIN`, `BTC_CHAIN`, `BTC-OnChain`) are read as that name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from kassa.compat.body import BodyInvalid, loads
from kassa.compat.greenfield.webhooks import greenfield_types, payment, unix
from kassa.domain.currencies import UnknownCurrency, get_currency
from kassa.domain.money import InvalidMoney, Money
from kassa.domain.orders import OrderException, OrderStatus, can_mark
from kassa.services.orders import NewOrder

VERSION = "2.0.0"
"""The Greenfield API level Kassa answers as (`/api/v1/server/info`): its shapes are BTCPay 2.x's."""

# ----- errors ----------------------------------------------------------------------------------


class GreenfieldError(Exception):
    """An answer in Greenfield's error shape."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def invalid(path: str, message: str) -> GreenfieldError:
    """A validation error: 422 with BTCPay's `[{"path", "message"}]`."""
    return GreenfieldError(422, [{"path": path, "message": message}])


def problem(status: int, code: str, message: str, **extra: Any) -> GreenfieldError:
    return GreenfieldError(status, {"code": code, "message": message, **extra})


def not_found(what: str) -> GreenfieldError:
    return problem(404, f"{what}-not-found", f"The {what} was not found")


# ----- permissions ---------------------------------------------------------------------------

# BTCPay permission -> the Kassa scope that grants it. A full Kassa key maps to exactly what
# BTCPay's WooCommerce plugin asks for (its four required permissions and its two optional ones).
PERMISSIONS = {
    "btcpay.store.canviewinvoices": "orders:read",
    "btcpay.store.cancreateinvoice": "orders:write",
    "btcpay.store.canmodifyinvoices": "orders:write",
    "btcpay.store.cancreatenonapprovedpullpayments": "orders:write",
    "btcpay.store.canviewstoresettings": "merchant:read",
    "btcpay.store.webhooks.canmodifywebhooks": "webhooks:write",
}


def permissions(scopes: Iterable[str], store_id: str) -> list[str]:
    have = set(scopes)
    return [f"{perm}:{store_id}" for perm, scope in PERMISSIONS.items() if scope in have]


# ----- reading requests ----------------------------------------------------------------------


def parse_body(raw: bytes, *, exact: bool = True) -> Any:
    """The body as JSON; `exact`: numbers as Decimals (amounts), else as sent (metadata, kept)."""
    if not raw.strip():
        raise invalid("", "A request body is required")
    try:
        return loads(raw, exact=exact)
    except BodyInvalid as exc:
        raise invalid("", str(exc)) from None


def _object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(path, f"{path or 'The body'} must be a JSON object")
    return value


def _number(value: Any, path: str) -> Decimal | None:
    """BTCPay takes a number or a numeric string wherever it takes a decimal."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise invalid(path, f"{path} must be a number")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise invalid(path, f"{path} must be a number, not {value[:40]!r}") from None
    else:
        raise invalid(path, f"{path} must be a number")
    if not number.is_finite():
        raise invalid(path, f"{path} must be a finite number")
    return number


def _text(value: Any, path: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(path, f"{path} must be a string")
    if len(value) > limit:
        raise invalid(path, f"{path} must be at most {limit} characters")
    return value


def _bool(value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise invalid(path, f"{path} must be true or false")


SPEED_POLICIES = {"HighSpeed": 0, "MediumSpeed": 1, "LowMediumSpeed": 2, "LowSpeed": 6}
_SUFFIX = re.compile(r"[-_](chain|onchain|bitcoinlike|btclike)$", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_URL = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)


def method_name(value: str, offered: Iterable[str]) -> str | None:
    """The Kassa method a Greenfield payment method id names, among those offered."""
    by_key = {m.lower(): m for m in offered}
    key = value.strip().lower()
    return by_key.get(key) or by_key.get(_SUFFIX.sub("", key))


def minor_units(value: Any, currency: str, path: str) -> int:
    number = _number(value, path)
    if number is None:
        raise invalid(path, f"{path} is required")
    if number < 0:
        raise invalid(path, "The amount should be 0 or more.")
    try:
        return Money.from_decimal(number, currency).amount
    except InvalidMoney as exc:
        raise invalid(path, f"{path} {exc}") from None


def invoice_request(raw: bytes, offered: list[str]) -> NewOrder:
    """A CreateInvoiceRequest as a Kassa order; `offered` are the merchant's enabled methods."""
    body = _object(parse_body(raw), "")
    currency = _text(body.get("currency"), "currency", 10)
    if not currency:
        raise invalid("currency", "currency is required (Kassa keeps no store default currency)")
    try:
        currency = get_currency(currency).code
    except UnknownCurrency:
        raise invalid("currency", f"Unknown currency {currency!r}") from None
    if body.get("amount") is None or _number(body.get("amount"), "amount") == 0:
        raise invalid("amount", "amount is required: Kassa does not make top-up invoices (any amount)")
    amount = minor_units(body.get("amount"), currency, "amount")
    metadata = _object(body.get("metadata"), "metadata")
    checkout = _object(body.get("checkout"), "checkout")
    if metadata:  # stored as sent: its numbers as JSON numbers, not Decimals
        metadata = parse_body(raw, exact=False)["metadata"]

    email = _text(metadata.get("buyerEmail"), "metadata.buyerEmail", 320)
    if email is not None and not _EMAIL.match(email):
        raise invalid("metadata.buyerEmail", "metadata.buyerEmail is not an email address")
    description = _text(metadata.get("itemDesc"), "metadata.itemDesc", 1000)
    order_id = metadata.get("orderId")
    if order_id is not None and not isinstance(order_id, str | int):
        raise invalid("metadata.orderId", "metadata.orderId must be a string")

    confirmations = None
    speed = checkout.get("speedPolicy")
    if speed is not None:
        if speed not in SPEED_POLICIES:
            raise invalid("checkout.speedPolicy", f"speedPolicy must be one of {', '.join(SPEED_POLICIES)}")
        confirmations = SPEED_POLICIES[speed]

    methods = None
    names = checkout.get("paymentMethods")
    if names is not None:
        if not isinstance(names, list) or not names:
            raise invalid("checkout.paymentMethods", "paymentMethods must be a list of payment method ids")
        methods = []
        for i, name in enumerate(names):
            found = method_name(name, offered) if isinstance(name, str) else None
            if found is None:
                raise invalid(
                    f"checkout.paymentMethods[{i}]",
                    f"Invalid PaymentMethodId {str(name)[:40]!r}; "
                    f"this store offers {', '.join(offered) or 'none'}",
                )
            methods.append(found)

    expires_in = None
    minutes = _number(checkout.get("expirationMinutes"), "checkout.expirationMinutes")
    if minutes is not None:
        expires_in = int(minutes * 60)
        if expires_in < 30:
            raise invalid("checkout.expirationMinutes", "Expiration time must be at least 30 seconds")
        if expires_in > 30 * 86400:
            raise invalid("checkout.expirationMinutes", "Expiration time must be at most 30 days")

    monitoring = None
    minutes = _number(checkout.get("monitoringMinutes"), "checkout.monitoringMinutes")
    if minutes is not None:
        monitoring = int(minutes * 60)
        if not 60 <= monitoring <= 90 * 86400:
            raise invalid("checkout.monitoringMinutes", "monitoringMinutes must be 1 to 129600 (90 days)")

    tolerance = None
    percent = _number(checkout.get("paymentTolerance"), "checkout.paymentTolerance")
    if percent is not None:
        if not 0 <= percent <= 100:
            raise invalid(
                "checkout.paymentTolerance", "PaymentTolerance can only be between 0 and 100 percent"
            )
        tolerance = int(percent * 100)

    redirect = _text(checkout.get("redirectURL"), "checkout.redirectURL", 2000)
    if redirect is not None and not _URL.match(redirect):
        raise invalid("checkout.redirectURL", "redirectURL must be an absolute http(s) URL")
    language = _text(checkout.get("defaultLanguage"), "checkout.defaultLanguage", 20)
    if language is not None and not _LANGUAGE.match(language):
        raise invalid("checkout.defaultLanguage", f"Unknown language {language!r} (give e.g. en-US or de)")
    auto = _bool(checkout.get("redirectAutomatically"), "checkout.redirectAutomatically")

    return NewOrder(
        currency=currency,
        amount=amount,
        description=description,
        email=email,
        confirmations=confirmations,
        expires_in=expires_in,
        success_url=redirect,
        payment_methods=methods,
        metadata=metadata,
        locale=language,
        auto_redirect=bool(auto),  # BTCPay's default: the customer clicks back to the shop
        tolerance_bps=tolerance,
        monitoring_window=monitoring,
    )


def statuses(values: Iterable[str]) -> list[OrderStatus]:
    """Kassa statuses for Greenfield's `status` filter (Invalid covers canceled orders too)."""
    out: list[OrderStatus] = []
    for value in values:
        kassa = STATUS_FILTER.get(value.lower())
        if kassa is None:
            raise invalid(
                "status", f"Unknown status {value[:40]!r}; use New, Processing, Expired, Invalid, Settled"
            )
        out.extend(kassa)
    return out


STATUS_FILTER = {
    "new": [OrderStatus.OPEN],
    "processing": [OrderStatus.PROCESSING],
    "expired": [OrderStatus.EXPIRED],
    "invalid": [OrderStatus.INVALID, OrderStatus.CANCELED],
    "settled": [OrderStatus.PAID],
}

# ----- writing answers -----------------------------------------------------------------------


def dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _decimal(amount: int | None, currency: str) -> str:
    return Money(int(amount or 0), currency).to_decimal_string()


def status_of(order: Mapping[str, Any]) -> tuple[str, str]:
    """(status, additionalStatus), as BTCPay would show the order."""
    status, exception = order["status"], order["exception"]
    received, due = int(order["amount_received"] or 0), order["amount_due"]
    over = due is not None and received > int(due)
    late_money = any(p["late"] and p["status"] != "rejected" for p in order["payments"])
    if exception == "marked":
        return ("Settled" if status == "paid" else "Invalid"), "Marked"
    if status == "open":
        return "New", "PaidPartial" if received else "None"
    if status == "processing":
        return "Processing", "PaidLate" if order["late"] else "PaidOver" if over else "None"
    if status == "paid":
        extra = {"overpaid": "PaidOver", "paid_late": "PaidLate"}.get(exception or "", "None")
        return "Settled", extra
    if status == "expired":
        return "Expired", "PaidLate" if late_money else "PaidPartial" if exception == "underpaid" else "None"
    # invalid (never final within the monitoring window) or canceled
    return "Invalid", "PaidOver" if over else "None"


def markable(order: Mapping[str, Any]) -> list[str]:
    status = OrderStatus(order["status"])
    exception = OrderException(order["exception"]) if order["exception"] else None
    out = []
    if can_mark(status, exception, OrderStatus.PAID):
        out.append("Settled")
    if can_mark(status, exception, OrderStatus.INVALID):
        out.append("Invalid")
    return out


def speed_policy(confirmations: int) -> str:
    for name, needed in sorted(SPEED_POLICIES.items(), key=lambda kv: kv[1]):
        if confirmations <= needed:
            return name
    return "LowSpeed"


def invoice(order: Mapping[str, Any], store_id: str) -> dict[str, Any]:
    """An order as BTCPay's InvoiceData."""
    status, additional = status_of(order)
    created = unix(order["created_at"]) or 0
    expires = unix(order["expires_at"]) or 0
    return {
        "id": order["id"],
        "storeId": store_id,
        "amount": _decimal(order["amount"], order["currency"]),
        "currency": order["currency"],
        "type": "Standard",
        "checkoutLink": order["checkout_url"],
        "status": status,
        "additionalStatus": additional,
        "createdTime": created,
        "expirationTime": expires,
        "monitoringExpiration": expires + int(order["monitoring_window"]),
        "availableStatusesForManualMarking": markable(order),
        "archived": bool(order["archived"]),
        "metadata": order["metadata"] or {},
        "checkout": {
            "speedPolicy": speed_policy(int(order["confirmations"])),
            "paymentMethods": [q["method"] for q in order["payment_methods"]],
            "defaultPaymentMethod": order["method"],
            "lazyPaymentMethods": False,
            "expirationMinutes": max(expires - created, 0) // 60,
            "monitoringMinutes": int(order["monitoring_window"]) // 60,
            "paymentTolerance": int(order["tolerance_bps"]) / 100,
            "redirectURL": order["success_url"],
            "redirectAutomatically": bool(order["auto_redirect"]),
            "defaultLanguage": order["locale"],
        },
        "receipt": {"enabled": True, "showQR": None, "showPayments": None},
    }


def payment_methods(order: Mapping[str, Any], only_accounted: bool = True) -> list[dict[str, Any]]:
    """The order's quotes as BTCPay's InvoicePaymentMethodDataModel list (2.x names, with the 1.x
    names alongside: paymentMethod, cryptoCode, networkFee)."""
    paid_in = order["payment_currency"]
    paid = [p for p in order["payments"] if not (only_accounted and p["status"] == "rejected")]
    chosen = next((q for q in order["payment_methods"] if q["method"] == order["method"]), None)
    # What was paid, in the invoice's currency (through the chosen method's rate).
    counted = sum(int(p["amount"]) for p in order["payments"] if p["status"] != "rejected")
    paid_value = (
        _major(counted, paid_in) * Decimal(chosen["rate"]) if chosen is not None and paid_in else Decimal(0)
    )
    out = []
    for q in order["payment_methods"]:
        currency, rate = q["currency"], Decimal(q["rate"])
        mine = [p for p in paid if p["method"] == q["method"]]
        exponent = get_currency(currency).exponent
        total = _to_minor(paid_value / rate, exponent) if rate else 0
        if q["method"] == order["method"]:
            total = counted  # exact: no round trip through the rate
        amount = int(q["amount"])
        method_paid = sum(int(p["amount"]) for p in mine if p["status"] != "rejected")
        out.append(
            {
                "paymentMethodId": q["method"],
                "paymentMethod": q["method"],
                "currency": currency,
                "cryptoCode": currency,
                "destination": q["address"] or "",
                "paymentLink": q["payment_uri"] or "",
                "rate": _plain(rate),
                "paymentMethodPaid": _decimal(method_paid, currency),
                "totalPaid": _decimal(total, currency),
                "due": _signed(amount - total, currency),
                "amount": _decimal(amount, currency),
                "paymentMethodFee": "0",
                "networkFee": "0",
                "payments": [payment(p, q["address"]) for p in mine],
                "activated": q["address"] is not None,
                "additionalData": {},
            }
        )
    return out


def _major(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-get_currency(currency).exponent)


def _to_minor(value: Decimal, exponent: int) -> int:
    return int(value.scaleb(exponent).to_integral_value(rounding=ROUND_DOWN))


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _signed(amount: int, currency: str) -> str:
    return ("-" if amount < 0 else "") + _decimal(abs(amount), currency)


def store(merchant: Any) -> dict[str, Any]:
    """A merchant as BTCPay's StoreData (the settings Kassa has; the rest at BTCPay's defaults)."""
    return {
        "id": merchant.id,
        "name": merchant.name,
        "website": None,
        "defaultCurrency": None,
        "invoiceExpiration": merchant.invoice_lifetime,
        "monitoringExpiration": merchant.monitoring_window,
        "displayExpirationTimer": 300,
        "speedPolicy": speed_policy(merchant.default_confirmations),
        "paymentTolerance": merchant.payment_tolerance_bps / 100,
        "defaultLang": "en",
        "anyoneCanCreateInvoice": False,
        "redirectAutomatically": False,
        "lazyPaymentMethods": False,
        "defaultPaymentMethod": None,
        "archived": False,
        "receipt": {"enabled": True, "showQR": None, "showPayments": None},
    }


def webhook(endpoint: Mapping[str, Any], secret: str | None = None) -> dict[str, Any]:
    """A Greenfield endpoint as BTCPay's WebhookData (the secret only when it was just set)."""
    types = endpoint["event_types"]
    options = endpoint["options"] or {}
    view: dict[str, Any] = {
        "id": endpoint["id"],
        "enabled": endpoint["enabled"],
        "automaticRedelivery": bool(options.get("automaticRedelivery", True)),
        "url": endpoint["url"],
        "authorizedEvents": {
            "everything": "*" in types or bool(options.get("everything")),
            "specificEvents": [] if options.get("everything") else greenfield_types(types),
        },
    }
    if secret is not None:
        view["secret"] = secret
    return view


def delivery(d: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery of Kassa's log as BTCPay's WebhookDeliveryData."""
    last = d["attempts"][-1] if d["attempts"] else None
    code = last["status_code"] if last else None
    if d["status"] == "succeeded":
        status = "HttpSuccess"
    elif code is not None:
        status = "HttpError"
    else:
        status = "Failed"
    return {
        "id": d["id"],
        "timestamp": unix(d["created_at"]),
        "httpCode": code,
        "errorMessage": last["error"] if last else None,
        "status": status,
    }
