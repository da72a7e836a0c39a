"""Public representations: the same dict goes to the API, event snapshots and the checkout page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kassa.domain import crockford
from kassa.domain.contract import contract_hash
from kassa.services.refund_links import RefundLinks

Row = Mapping[Any, Any]
"""A database row's mapping (or a plain dict of the same columns)."""


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def quote_view(q: Row) -> dict[str, Any]:
    return {
        "method": q["method"],
        "rail": q["rail"],
        "currency": q["currency"],
        "amount": q["amount"],
        "rate": q["rate"],
        "address": q["destination"],
        "payment_uri": q["payment_uri"],
        "note": q.get("note"),
        "expires_at": iso(q["expires_at"]),
    }


def payment_view(p: Row, order_id: str) -> dict[str, Any]:
    return {
        "id": p["id"],
        "object": "payment",
        "order": order_id,
        "rail": p["rail"],
        "method": p["method"],
        "amount": p["amount"],
        "currency": p["currency"],
        "reference": p["reference"],
        "confirmations": p["confirmations"],
        "status": p["status"],
        "late": p["late"],
        "replaceable": bool(p.get("replaceable")),
        "test": p["test"],
        "seen_at": iso(p["seen_at"]),
        "confirmed_at": iso(p["confirmed_at"]),
        "rejected_at": iso(p["rejected_at"]),
    }


def contract_hash_of(o: Row) -> bytes:
    """The order's contract hash (domain/contract.py), from its row."""
    return contract_hash(
        order_id=o["id"],
        merchant=o["merchant_pk"],
        merchant_order_id=o["merchant_order_id"],
        amount=o["amount"],
        currency=o["currency"],
        cart=o["cart"],
        description=o["description"],
        fulfillment_url=o["fulfillment_url"],
        created_at=iso(o["created_at"]) or "",
    )


SUMMARY_COLUMNS = (
    "pk", "id", "merchant_order_id", "status", "exception", "amount", "currency", "method", "test",
    "created_at", "paid_at",
)  # fmt: skip


def order_summary(o: Row) -> dict[str, Any]:
    """An order in one line (the dashboard's list): named as in `order_view`."""
    return {
        "id": o["id"],
        "object": "order",
        "order_id": o["merchant_order_id"],
        "status": o["status"],
        "exception": o["exception"],
        "amount": o["amount"],
        "currency": o["currency"],
        "method": o["method"],
        "test": o["test"],
        "created_at": iso(o["created_at"]),
        "paid_at": iso(o["paid_at"]),
    }


def order_view(
    o: Row,
    quotes: Sequence[Row],
    payments: Sequence[Row],
    base_url: str,
) -> dict[str, Any]:
    chosen = next((q for q in quotes if q["method"] == o["method"]), None)
    return {
        "id": o["id"],
        "object": "order",
        "order_id": o["merchant_order_id"],
        "status": o["status"],
        "exception": o["exception"],
        "amount": o["amount"],
        "currency": o["currency"],
        "cart": o["cart"],
        "description": o["description"],
        "email": o["email"],
        "confirmations": o["confirmations"],
        "expires_at": iso(o["expires_at"]),
        "timer_paused": o["timer_remaining"] is not None,
        "timer_remaining": round(o["timer_remaining"]) if o["timer_remaining"] is not None else None,
        "late": o["late"],
        "late_payment_policy": o["late_payment_policy"],
        "tolerance_bps": o["tolerance_bps"],
        "monitoring_window": o["monitoring_window"],
        "checkout_url": f"{base_url}/pay/{o['id']}",
        "success_url": o["success_url"],
        "cancel_url": o["cancel_url"],
        "callback_url": o["callback_url"],
        "fulfillment_url": o["fulfillment_url"],
        "session_id": o["session_id"],
        "h_contract": crockford.encode(contract_hash_of(o)),
        "metadata": o["metadata"],
        "method": o["method"],
        "payment_methods": [quote_view(q) for q in quotes],
        "payment_currency": chosen["currency"] if chosen else None,
        "amount_due": o["amount_due"],
        "amount_received": o["amount_received"],
        "amount_confirmed": o["amount_confirmed"],
        "amount_refunded": o["amount_refunded"],
        "payments": [payment_view(p, o["id"]) for p in payments],
        "test": o["test"],
        "archived": o["archived"],
        "locale": o["locale"],
        "auto_redirect": o["auto_redirect"],
        "version": o["version"],
        "created_at": iso(o["created_at"]),
        "updated_at": iso(o["updated_at"]),
        "paid_at": iso(o["paid_at"]),
        "closed_at": iso(o["closed_at"]),
    }


def etag(order_id: str, version: int) -> str:
    return f'"{order_id}.{version}"'


def refund_view(r: Row, order_id: str, links: RefundLinks | None = None) -> dict[str, Any]:
    """`links` (services/refund_links.py) gives a refund waiting for its address the customer's link."""
    link = links.url(r["id"]) if links is not None and r["status"] == "pending_destination" else None
    return {
        "id": r["id"],
        "object": "refund",
        "order": order_id,
        "amount": r["amount"],
        "currency": r["currency"],
        "method": r["method"],
        "rail": r["rail"],
        "reason": r["reason"],
        "origin": r["origin"],
        "approved": r["approved"],
        "status": r["status"],
        "destination": r["destination"],
        "destination_url": link,
        "reference": r["reference"],
        "received": r["received"],
        "network_fee": r["network_fee"],
        "failure": r["failure"],
        "test": r["test"],
        "created_at": iso(r["created_at"]),
        "updated_at": iso(r["updated_at"]),
        "sent_at": iso(r["sent_at"]),
        "confirmed_at": iso(r["confirmed_at"]),
    }


def payout_view(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "object": "payout",
        "rail": r["rail"],
        "currency": r["currency"],
        "amount": r["amount"],
        "fee": r["fee"],
        "received": r["received"],
        "network_fee": r["network_fee"],
        "destination": r["destination"],
        "origin": r["origin"],
        "period": r["period"],
        "status": r["status"],
        "reference": r["reference"],
        "unsigned_tx": r["unsigned"] if r["status"] == "awaiting_signature" else None,
        "failure": r["failure"],
        "test": r["test"],
        "created_at": iso(r["created_at"]),
        "updated_at": iso(r["updated_at"]),
        "sent_at": iso(r["sent_at"]),
        "confirmed_at": iso(r["confirmed_at"]),
    }
