"""Refunds: money going back to the customer (pure: no I/O).

A refund is created for an amount in the currency the order was paid in (the chosen method's), never
more in total than the order's final money not yet refunded. Its life:

    pending_destination -> pending -> sent -> confirmed
    pending_destination | pending -> canceled
    pending | sent -> failed

`pending_destination`: Kassa does not know where to send (a crypto payer's address); `pending`: it
does, and the rail (or the merchant, by hand) is to send it; `sent`: a transaction went out, with its
reference; `confirmed`: final. Reaching `canceled` or `failed` gives the amount back to what may be
refunded.
"""

from __future__ import annotations

from enum import StrEnum


class RefundStatus(StrEnum):
    PENDING_DESTINATION = "pending_destination"
    PENDING = "pending"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    CANCELED = "canceled"


MOVES: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PENDING_DESTINATION: frozenset({RefundStatus.PENDING, RefundStatus.CANCELED}),
    RefundStatus.PENDING: frozenset({RefundStatus.SENT, RefundStatus.CANCELED, RefundStatus.FAILED}),
    RefundStatus.SENT: frozenset({RefundStatus.CONFIRMED, RefundStatus.FAILED}),
    RefundStatus.CONFIRMED: frozenset(),
    RefundStatus.FAILED: frozenset(),
    RefundStatus.CANCELED: frozenset(),
}
ACTIVE = frozenset(
    {RefundStatus.PENDING_DESTINATION, RefundStatus.PENDING, RefundStatus.SENT, RefundStatus.CONFIRMED}
)
"""Refunds whose amount is spoken for (not given back by a cancel or a failure)."""


class RefundTransitionError(ValueError):
    pass


def move(current: RefundStatus, target: RefundStatus) -> RefundStatus:
    """The next status; RefundTransitionError when a refund cannot go there from where it is."""
    if target not in MOVES[current]:
        raise RefundTransitionError(f"a {current.value} refund cannot become {target.value}")
    return target


def refundable(amount_confirmed: int, active_refunds: int) -> int:
    """What may still be refunded: the order's final money less what refunds already hold."""
    return max(0, amount_confirmed - active_refunds)


def refund_refusal(
    amount: int, refundable_now: int, currency: str, paid_currency: str | None
) -> tuple[str, str] | None:
    """Why a refund of `amount` `currency` cannot be made now, as (the field at fault, why), or None."""
    if paid_currency is None:
        return "amount", "nothing was paid on this order"
    if currency != paid_currency:
        return (
            "currency",
            f"refunds of this order are in {paid_currency}, the currency it was paid in, not {currency}",
        )
    if amount <= 0:
        return "amount", "the amount must be a positive whole number of minor units"
    if amount > refundable_now:
        return (
            "amount",
            f"at most {refundable_now} can be refunded (final money received less refunds already made)",
        )
    return None


def refund_rule(status: str, exception: str | None) -> str:
    """Which rule makes money due back from an order in this state (`refund_due` says how much):
    the excess of a paid order, late money on a paid one, or all of an order that ended unpaid."""
    if status == "paid":
        return "overpaid" if exception == "overpaid" else "late"
    return "underpaid" if exception == "underpaid" else "unpaid"
