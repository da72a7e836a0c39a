"""Greenfield webhooks: which Kassa events a BTCPay event stands for, the body BTCPay sends, and its
`BTCPay-Sig` header. The delivery worker writes a Greenfield endpoint's messages with these; the
outbox, retries and the delivery log are Kassa's own."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from kassa.domain.money import Money

# Each Greenfield event and the Kassa events that make it (the order's extra events, such as
# order.overpaid or order.underpaid, come with the main one and are told by its fields).
EVENTS: dict[str, tuple[str, ...]] = {
    "InvoiceCreated": ("order.created",),
    "InvoiceReceivedPayment": ("payment.received",),
    "InvoicePaymentSettled": ("payment.confirmed",),
    "InvoiceProcessing": ("order.processing",),
    "InvoiceExpired": ("order.expired",),
    "InvoiceSettled": ("order.paid",),
    "InvoiceInvalid": ("order.invalid", "order.canceled"),
}
_BY_KASSA = {kassa: name for name, types in EVENTS.items() for kassa in types}


def kassa_types(everything: bool, specific: Iterable[str]) -> list[str]:
    """The Kassa event types an endpoint subscribes to for these authorized Greenfield events."""
    if everything:
        return sorted(_BY_KASSA)
    return sorted({kassa for name in specific for kassa in EVENTS[name]})


def greenfield_types(kassa: Iterable[str]) -> list[str]:
    """The Greenfield events an endpoint's Kassa event types cover, in BTCPay's order."""
    have = set(kassa)
    if "*" in have:
        return list(EVENTS)
    return [name for name, types in EVENTS.items() if set(types) <= have]


def event_name(kassa_type: str) -> str | None:
    return _BY_KASSA.get(kassa_type)


def unix(value: str | datetime | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(value.timestamp())


PAYMENT_STATUS = {"pending": "Processing", "confirmed": "Settled", "rejected": "Invalid"}


def payment(p: Mapping[str, Any], destination: str | None) -> dict[str, Any]:
    """One payment as Greenfield shows it: amounts as decimal strings of the coin paid."""
    return {
        "id": p["reference"] or p["id"],
        "receivedDate": unix(p["seen_at"]),
        "value": Money(int(p["amount"]), p["currency"]).to_decimal_string(),
        "fee": "0",
        "status": PAYMENT_STATUS[p["status"]],
        "destination": destination,
    }


def body(
    *,
    kassa_type: str,
    data: Mapping[str, Any],
    order: Mapping[str, Any],
    store_id: str,
    webhook_id: str,
    delivery_id: str,
    original_delivery_id: str,
    timestamp: datetime,
) -> bytes | None:
    """The message for a Kassa event (its stored snapshot `data`) to a Greenfield endpoint; None
    for events Greenfield has no name for. `order` is the order as it is now (for a payment event,
    whose snapshot is the payment: its metadata and destination)."""
    name = event_name(kassa_type)
    if name is None:
        return None
    message: dict[str, Any] = {
        "deliveryId": delivery_id,
        "webhookId": webhook_id,
        "originalDeliveryId": original_delivery_id,
        "isRedelivery": original_delivery_id != delivery_id,
        "type": name,
        "timestamp": int(timestamp.timestamp()),
        "storeId": store_id,
        "invoiceId": order["id"],
        "metadata": order.get("metadata") or {},
    }
    if kassa_type.startswith("payment."):
        quote = next((q for q in order["payment_methods"] if q["method"] == data["method"]), None)
        message["afterExpiration"] = bool(data["late"])
        message["paymentMethod"] = data["method"]
        message["paymentMethodId"] = data["method"]
        message["payment"] = payment(data, quote["address"] if quote else None)
    elif name == "InvoiceProcessing":
        message["overPaid"] = _over(data, data["amount_received"])
    elif name == "InvoiceExpired":
        message["partiallyPaid"] = int(data["amount_received"] or 0) > 0
        message["paymentMethodId"] = data["method"]
    elif name == "InvoiceSettled":
        message["manuallyMarked"] = data["exception"] == "marked"
        message["overPaid"] = data["exception"] == "overpaid" or _over(data, data["amount_confirmed"])
    elif name == "InvoiceInvalid":
        message["manuallyMarked"] = data["exception"] == "marked"
    return json.dumps(message, separators=(",", ":")).encode()


def _over(order: Mapping[str, Any], received: int | None) -> bool:
    due = order["amount_due"]
    return due is not None and received is not None and int(received) > int(due)


def signature(secret: str, raw: bytes) -> str:
    """`BTCPay-Sig`: `sha256=` and the hex HMAC-SHA256 of the body, keyed with the secret's UTF-8."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
