"""Refunds Kassa owes by rule, made in the transaction of the order change that makes them due:
an order that ended with money but unpaid (expired underpaid: LibrePay's rule 1; canceled or invalid
with final money), money that came after expiry when the merchant does not accept late payments
(rule 2), and the excess of an overpayment. What is due is the state machine's `refund_due`; what
refunds already hold is subtracted, so a rule never refunds twice and never more than came in.

The merchant's `refund_policy` says whether such a refund may be sent at once (`automatic`) or waits
for the merchant (`approve`, the default: `POST /api/v1/refunds/{id}/approve`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from kassa.db.database import Tx
from kassa.db.tables import merchants, refunds
from kassa.domain.ledger import refund_reserved
from kassa.domain.orders import OrderStatus, refund_due_of
from kassa.domain.refunds import ACTIVE, RefundStatus, refund_rule
from kassa.ids import new_id
from kassa.rails.registry import UnknownRail, get_rail
from kassa.services import ledger
from kassa.services.views import Row

SENT = (RefundStatus.SENT.value, RefundStatus.CONFIRMED.value)


async def held_total(tx: Tx, order_pk: int) -> int:
    """What the order's refunds hold (all but canceled and failed ones). Summed in Python: exact."""
    rows = await tx.conn.execute(
        select(refunds.c.amount).where(
            refunds.c.order_pk == order_pk, refunds.c.status.in_([s.value for s in ACTIVE])
        )
    )
    return sum(r.amount for r in rows)


async def sent_total(tx: Tx, order_pk: int) -> int:
    """What went back to the customer: the order's `amount_refunded`."""
    rows = await tx.conn.execute(
        select(refunds.c.amount).where(refunds.c.order_pk == order_pk, refunds.c.status.in_(SENT))
    )
    return sum(r.amount for r in rows)


async def due_by_rule(
    tx: Tx, order: Row, quote_rows: Sequence[Row], payment_rows: Sequence[Row], now: datetime
) -> list[dict[str, Any]]:
    """The refund this order change makes due (none, or one row, inserted and set aside in the ledger)."""
    status = OrderStatus(order["status"])
    if status in (OrderStatus.OPEN, OrderStatus.PROCESSING) or not order["method"]:
        return []
    due = refund_due_of(order, payment_rows)
    if due <= 0:
        return []
    held = await held_total(tx, order["pk"])
    if due <= held:
        return []
    quote = next((q for q in quote_rows if q["method"] == order["method"]), None)
    if quote is None:
        return []
    try:
        rail = get_rail(quote["rail"])
    except UnknownRail:
        return []
    policy = (
        await tx.conn.execute(select(merchants.c.refund_policy).where(merchants.c.pk == order["merchant_pk"]))
    ).scalar_one()
    refund = await record_refund(
        tx,
        order,
        quote,
        rail,
        amount=due - held,
        origin=refund_rule(order["status"], order["exception"]),
        approved=policy == "automatic",
        now=now,
    )
    return [refund]


async def record_refund(
    tx: Tx,
    order: Row,
    quote: Row,
    rail: Any,
    *,
    amount: int,
    origin: str,
    approved: bool,
    now: datetime,
    reason: str | None = None,
    destination: str | None = None,
) -> dict[str, Any]:
    """Insert a refund of the order's paid method and set its amount aside in the ledger. Kassa needs
    an address only when it sends; a merchant sending by hand knows where."""
    pending = destination is not None or not rail.can_send
    refund: dict[str, Any] = {
        "id": new_id("rfd"),
        "merchant_pk": order["merchant_pk"],
        "order_pk": order["pk"],
        "rail": quote["rail"],
        "method": quote["method"],
        "currency": quote["currency"],
        "amount": amount,
        "reason": reason,
        "origin": origin,
        "approved": approved,
        "status": (RefundStatus.PENDING if pending else RefundStatus.PENDING_DESTINATION).value,
        "destination": destination,
        "reference": None,
        "prepared": None,
        "received": None,
        "network_fee": None,
        "failure": None,
        "test": order["test"],
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
        "confirmed_at": None,
    }
    refund["pk"] = (
        await tx.conn.execute(insert(refunds).values(**refund).returning(refunds.c.pk))
    ).scalar_one()
    posting = refund_reserved(refund["id"], refund["currency"], amount)
    await ledger.post(tx, order["merchant_pk"], posting, test=order["test"], now=now, order_id=order["id"])
    return refund
