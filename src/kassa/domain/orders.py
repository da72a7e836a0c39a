"""The order state machine (DESIGN.md, "Domain").

```
open ──payment seen──> processing ──final──> paid
 │  (expiry timer pauses while processing; a dropped payment returns it to open)
 ├──timer runs out, nothing received──> expired
 ├──timer runs out, too little received──> expired + underpaid
 ├──canceled
processing ──never final within the monitoring window──> invalid
paid: + overpaid when more came; + paid_late when it came after expiry
marked by hand (`mark`): paid or invalid + marked, whatever the rails saw
```

`advance` is the one function that moves an order: given the order's state, the payments observed
so far and the time, it returns the next state and the events the change emits. It is pure and
idempotent (advancing twice with the same facts changes nothing the second time), so replayed
notifications and concurrent workers cannot count anything twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class OrderStatus(StrEnum):
    OPEN = "open"
    PROCESSING = "processing"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELED = "canceled"
    INVALID = "invalid"


class OrderException(StrEnum):
    UNDERPAID = "underpaid"
    OVERPAID = "overpaid"
    PAID_LATE = "paid_late"
    MARKED = "marked"  # settled or declared invalid by the merchant, not by the money seen


class PaymentStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class LatePaymentPolicy(StrEnum):
    ACCEPT = "accept"  # a late payment that covers the order still pays it (exception paid_late)
    REFUND = "refund"  # the order stays expired; late money is due back to the customer


TERMINAL = frozenset({OrderStatus.PAID, OrderStatus.CANCELED, OrderStatus.INVALID})
"""No clock or new payment moves these; only a paid order's final payment undone takes it back."""


class TransitionError(ValueError):
    """A transition the state machine does not allow (e.g. canceling a paid order)."""


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """What the core knows of one observed payment, in the order's payment currency."""

    amount: int
    confirmations: int
    rejected: bool = False
    late: bool = False  # arrived when the order no longer took money (see `arrives_late`)

    @classmethod
    def of(cls, payment: Mapping[str, Any]) -> PaymentFacts:
        """From a stored payment or its view (`amount`, `confirmations`, `status`, `late`)."""
        return cls(
            payment["amount"], payment["confirmations"], payment["status"] == "rejected", payment["late"]
        )


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """What the order asks for; fixed once the method's quote is made."""

    amount_due: int  # in the payment method's minor units
    tolerance: int  # minor units the payment may fall short by and still count as paid
    confirmations: int  # required confirmations for a payment to be final
    monitoring_window: timedelta
    late_policy: LatePaymentPolicy = LatePaymentPolicy.ACCEPT


@dataclass(frozen=True, slots=True)
class OrderState:
    status: OrderStatus
    expires_at: datetime
    exception: OrderException | None = None
    amount_received: int = 0  # not rejected, any confirmations
    amount_confirmed: int = 0  # with the required confirmations
    processing_since: datetime | None = None
    timer_remaining: timedelta | None = None  # set while the expiry timer is paused
    late: bool = False  # money arrived after expiry
    paid_at: datetime | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Step:
    state: OrderState
    events: tuple[str, ...] = field(default_factory=tuple)
    states: tuple[OrderState, ...] = field(default_factory=tuple)  # the state right after each event

    @property
    def changed(self) -> bool:
        return bool(self.events)


def payment_is_final(payment: PaymentFacts, terms: OrderTerms) -> bool:
    return not payment.rejected and payment.confirmations >= terms.confirmations


def payment_status(payment: PaymentFacts, terms: OrderTerms) -> PaymentStatus:
    if payment.rejected:
        return PaymentStatus.REJECTED
    return PaymentStatus.CONFIRMED if payment_is_final(payment, terms) else PaymentStatus.PENDING


def tolerance_for(amount_due: int, tolerance_bps: int) -> int:
    """Basis points of the amount due, rounded down (the merchant never loses more than asked)."""
    return amount_due * tolerance_bps // 10_000


def advance(state: OrderState, terms: OrderTerms, payments: Sequence[PaymentFacts], now: datetime) -> Step:
    """Move the order as far as the facts allow, emitting one event per transition."""
    if terms.late_policy is LatePaymentPolicy.REFUND:
        payments = [p for p in payments if not p.late]  # due back to the customer; they pay nothing
    received = sum(p.amount for p in payments if not p.rejected)
    confirmed = sum(p.amount for p in payments if payment_is_final(p, terms))
    enough = terms.amount_due - terms.tolerance
    events: list[str] = []
    states: list[OrderState] = []
    s = dataclasses.replace(state, amount_received=received, amount_confirmed=confirmed)

    def emit(event: str) -> None:
        events.append(event)
        states.append(s)

    if s.status is OrderStatus.PAID and confirmed < enough and s.exception is not OrderException.MARKED:
        # A final payment undone (a reorganisation deeper than the confirmations asked for, or a
        # double spend of a payment accepted at 0-conf): the order is no longer paid.
        s = dataclasses.replace(s, paid_at=None, exception=None)
        if received >= enough and received > 0:  # e.g. the transaction is back in the mempool
            s = dataclasses.replace(_to_processing(s, now), closed_at=None)
            emit("order.processing")
        else:
            expired = s.late or now >= s.expires_at
            s = dataclasses.replace(
                s,
                status=OrderStatus.EXPIRED if expired else OrderStatus.OPEN,
                exception=OrderException.UNDERPAID if expired and received > 0 else None,
                closed_at=now if expired else None,
            )
            emit("order.expired" if expired else "order.reopened")
    elif s.status is OrderStatus.OPEN and received >= enough and received > 0:
        s = _to_processing(s, now)
        emit("order.processing")
    elif s.status is OrderStatus.EXPIRED and terms.late_policy is LatePaymentPolicy.ACCEPT:
        if received >= enough and received > 0:
            s = dataclasses.replace(
                s,
                status=OrderStatus.PROCESSING,
                processing_since=now,
                timer_remaining=timedelta(0),
                late=True,
                exception=None,
                closed_at=None,
            )
            emit("order.processing")
    elif s.status is OrderStatus.PROCESSING and received < enough:
        remaining = s.timer_remaining if s.timer_remaining is not None else timedelta(0)
        status = OrderStatus.EXPIRED if s.late else OrderStatus.OPEN
        s = dataclasses.replace(
            s,
            status=status,
            processing_since=None,
            timer_remaining=None,
            expires_at=s.expires_at if s.late else now + remaining,
            exception=OrderException.UNDERPAID if s.late and received > 0 else None,
            closed_at=now if s.late else None,
        )
        emit("order.reopened" if status is OrderStatus.OPEN else "order.expired")

    if s.status is OrderStatus.PROCESSING:
        if confirmed >= enough and confirmed > 0:
            if s.late:
                exception: OrderException | None = OrderException.PAID_LATE
            elif confirmed > terms.amount_due:
                exception = OrderException.OVERPAID
            else:
                exception = None
            s = dataclasses.replace(
                s,
                status=OrderStatus.PAID,
                exception=exception,
                paid_at=now,
                closed_at=now,
                timer_remaining=None,
            )
            emit("order.paid")
            if exception is not None:
                emit(f"order.{exception.value}")
        elif s.processing_since is not None and now >= s.processing_since + terms.monitoring_window:
            s = dataclasses.replace(s, status=OrderStatus.INVALID, closed_at=now, timer_remaining=None)
            emit("order.invalid")
    elif s.status is OrderStatus.OPEN and now >= s.expires_at:
        exception = OrderException.UNDERPAID if received > 0 else None
        s = dataclasses.replace(s, status=OrderStatus.EXPIRED, exception=exception, closed_at=now)
        emit("order.expired")
        if exception is not None:
            emit("order.underpaid")
    elif s.status is OrderStatus.PAID and s.exception is None and confirmed > terms.amount_due:
        s = dataclasses.replace(s, exception=OrderException.OVERPAID)
        emit("order.overpaid")

    return Step(s, tuple(events), tuple(states))


def _to_processing(s: OrderState, now: datetime) -> OrderState:
    remaining = max(s.expires_at - now, timedelta(0))
    return dataclasses.replace(
        s, status=OrderStatus.PROCESSING, processing_since=now, timer_remaining=remaining
    )


def cancel(state: OrderState, now: datetime) -> Step:
    """Cancel an order; only an open order can be canceled."""
    if state.status is not OrderStatus.OPEN:
        raise TransitionError(f"only an open order can be canceled; this one is {state.status.value}")
    new = dataclasses.replace(state, status=OrderStatus.CANCELED, closed_at=now)
    return Step(new, ("order.canceled",), (new,))


MARKABLE = {
    OrderStatus.PAID: frozenset(
        {
            OrderStatus.OPEN,
            OrderStatus.PROCESSING,
            OrderStatus.EXPIRED,
            OrderStatus.INVALID,
            OrderStatus.CANCELED,
        }
    ),
    OrderStatus.INVALID: frozenset({OrderStatus.OPEN, OrderStatus.PROCESSING, OrderStatus.EXPIRED}),
}
"""What an order may be marked by hand, from which statuses (a paid order only when it was marked
paid: money that came is refunded, not declared away)."""


def can_mark(status: OrderStatus, exception: OrderException | None, to: OrderStatus) -> bool:
    return status in MARKABLE.get(to, frozenset()) or (
        to is OrderStatus.INVALID and status is OrderStatus.PAID and exception is OrderException.MARKED
    )


def mark(state: OrderState, to: OrderStatus, now: datetime) -> Step:
    """The merchant settles an order by hand (paid another way, or a shortfall accepted) or declares
    it invalid. The order carries exception `marked`, and no later payment or reorg moves it: money
    that arrives afterwards is late, money that is undone leaves it paid. No money moves in the ledger:
    only payments do that."""
    if not can_mark(state.status, state.exception, to):
        allowed = ", ".join(sorted(s.value for s in MARKABLE.get(to, ())))
        raise TransitionError(
            f"an order that is {state.status.value} cannot be marked {to.value}"
            + (f" (only one that is {allowed})" if allowed else "")
        )
    paid = to is OrderStatus.PAID
    new = dataclasses.replace(
        state,
        status=to,
        exception=OrderException.MARKED,
        paid_at=now if paid else None,
        closed_at=now,
        timer_remaining=None,
    )
    return Step(new, (f"order.{to.value}",), (new,))


def arrives_late(status: OrderStatus) -> bool:
    """Whether money arriving now, with the order in `status`, is late: after expiry, cancelation
    or the monitoring window. Late money pays an expired order only under the `accept` policy."""
    return status in (OrderStatus.EXPIRED, OrderStatus.CANCELED, OrderStatus.INVALID)


def submission_refusal(state: OrderState, amount_due: int, offered: int) -> tuple[str, str] | None:
    """Why a submitted payment (a payload the core forwards to the merchant's wallet, such as a
    Grin slate) cannot be taken now, as (code, message); None when it can. Only an open order with
    nothing pending takes one (an earlier attempt that was refused or dropped leaves it open), and
    only for exactly the amount due: the payer's wallet signs for that amount, so any other amount
    would leave the order under- or overpaid by construction."""
    if state.status is OrderStatus.PROCESSING or (state.status is OrderStatus.OPEN and state.amount_received):
        return "payment_pending", "a payment for this order was already received and is being confirmed"
    if state.status is not OrderStatus.OPEN:
        return "order_not_open", f"the order is {state.status.value}; it takes no payment now"
    if offered != amount_due:
        return (
            "amount_mismatch",
            f"the payment is for {offered} but the order asks for exactly {amount_due} (minor units)",
        )
    return None


def refund_due(
    status: OrderStatus,
    amount_due: int,
    payments: Sequence[PaymentFacts],
    required_confirmations: int,
    late_policy: LatePaymentPolicy,
) -> int:
    """What the customer is owed back, in the payment currency, of the money that is final:
    everything when the order ended unpaid (expired, underpaid or paid too late under the `refund`
    policy, canceled, invalid: LibrePay's rules 1 and 2), and what a paid order received beyond the
    amount due (overpaid). Unconfirmed money is not owed until it is final; refunds already made are
    the caller's to subtract."""
    final = [p for p in payments if not p.rejected and p.confirmations >= required_confirmations]
    if status in (OrderStatus.OPEN, OrderStatus.PROCESSING):
        return 0
    if status is not OrderStatus.PAID:
        return sum(p.amount for p in final)
    refused = sum(p.amount for p in final if p.late and late_policy is LatePaymentPolicy.REFUND)
    counted = sum(p.amount for p in final) - refused
    return refused + max(counted - amount_due, 0)


def refund_due_of(order: Mapping[str, Any], payments: Iterable[Mapping[str, Any]]) -> int:
    """`refund_due` of a stored order (or its view) and its payments."""
    return refund_due(
        OrderStatus(order["status"]),
        order["amount_due"] or order["amount"],
        [PaymentFacts.of(p) for p in payments],
        order["confirmations"],
        LatePaymentPolicy(order["late_payment_policy"]),
    )
