"""The order state machine: the DESIGN.md diagram as examples, and its invariants as properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kassa.domain.orders import (
    TERMINAL,
    LatePaymentPolicy,
    OrderException,
    OrderState,
    OrderStatus,
    OrderTerms,
    PaymentFacts,
    TransitionError,
    advance,
    arrives_late,
    can_mark,
    cancel,
    mark,
    tolerance_for,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TERMS = OrderTerms(amount_due=1000, tolerance=0, confirmations=2, monitoring_window=timedelta(hours=1))


def fresh(minutes: int = 15) -> OrderState:
    return OrderState(status=OrderStatus.OPEN, expires_at=T0 + timedelta(minutes=minutes))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_open_to_processing_to_paid() -> None:
    step = advance(fresh(), TERMS, [PaymentFacts(1000, 0)], at(60))
    assert step.events == ("order.processing",)
    assert step.state.status is OrderStatus.PROCESSING
    assert step.state.timer_remaining == timedelta(minutes=14)
    step = advance(step.state, TERMS, [PaymentFacts(1000, 2)], at(120))
    assert step.events == ("order.paid",)
    assert step.state.status is OrderStatus.PAID
    assert step.state.exception is None
    assert step.state.paid_at == at(120)


def test_partial_payment_stays_open_then_expires_underpaid() -> None:
    step = advance(fresh(), TERMS, [PaymentFacts(400, 0)], at(60))
    assert step.events == ()
    assert step.state.status is OrderStatus.OPEN
    assert step.state.amount_received == 400
    step = advance(step.state, TERMS, [PaymentFacts(400, 5)], at(15 * 60))
    assert step.events == ("order.expired", "order.underpaid")
    assert (step.state.status, step.state.exception) == (OrderStatus.EXPIRED, OrderException.UNDERPAID)


def test_expiry_without_payment() -> None:
    step = advance(fresh(), TERMS, [], at(15 * 60))
    assert step.events == ("order.expired",)
    assert step.state.exception is None


def test_several_payments_add_up() -> None:
    step = advance(fresh(), TERMS, [PaymentFacts(600, 0), PaymentFacts(400, 0)], at(1))
    assert step.state.status is OrderStatus.PROCESSING
    step = advance(step.state, TERMS, [PaymentFacts(600, 2), PaymentFacts(400, 1)], at(2))
    assert step.state.status is OrderStatus.PROCESSING  # one is not final yet
    step = advance(step.state, TERMS, [PaymentFacts(600, 3), PaymentFacts(400, 2)], at(3))
    assert step.state.status is OrderStatus.PAID


def test_overpaid() -> None:
    step = advance(fresh(), TERMS, [PaymentFacts(1500, 2)], at(1))
    assert step.events == ("order.processing", "order.paid", "order.overpaid")
    assert [s.status for s in step.states] == [OrderStatus.PROCESSING, OrderStatus.PAID, OrderStatus.PAID]
    assert step.state.exception is OrderException.OVERPAID


def test_overpaid_after_paid() -> None:
    paid = advance(fresh(), TERMS, [PaymentFacts(1000, 2)], at(1)).state
    step = advance(paid, TERMS, [PaymentFacts(1000, 2), PaymentFacts(1, 2)], at(2))
    assert step.events == ("order.overpaid",)


def test_tolerance() -> None:
    terms = OrderTerms(1000, tolerance_for(1000, 100), 0, timedelta(hours=1))  # 1 %
    assert terms.tolerance == 10
    assert advance(fresh(), terms, [PaymentFacts(990, 0)], at(1)).state.status is OrderStatus.PAID
    assert advance(fresh(), terms, [PaymentFacts(989, 0)], at(1)).state.status is OrderStatus.OPEN


def test_timer_pauses_while_processing_and_resumes_when_payment_dropped() -> None:
    processing = advance(fresh(), TERMS, [PaymentFacts(1000, 0)], at(10 * 60)).state
    # Long past the original expiry, still processing: the timer is paused.
    later = advance(processing, TERMS, [PaymentFacts(1000, 1)], at(40 * 60))
    assert later.state.status is OrderStatus.PROCESSING
    dropped = advance(later.state, TERMS, [PaymentFacts(1000, 1, rejected=True)], at(41 * 60))
    assert dropped.events == ("order.reopened",)
    assert dropped.state.status is OrderStatus.OPEN
    assert dropped.state.expires_at == at(41 * 60) + timedelta(minutes=5)


def test_monitoring_window_makes_it_invalid() -> None:
    processing = advance(fresh(), TERMS, [PaymentFacts(1000, 0)], at(0)).state
    assert (
        advance(processing, TERMS, [PaymentFacts(1000, 1)], at(3599)).state.status is OrderStatus.PROCESSING
    )
    step = advance(processing, TERMS, [PaymentFacts(1000, 1)], at(3600))
    assert step.events == ("order.invalid",)


def test_late_payment_accepted() -> None:
    expired = advance(fresh(), TERMS, [], at(15 * 60)).state
    step = advance(expired, TERMS, [PaymentFacts(1000, 0)], at(20 * 60))
    assert step.state.status is OrderStatus.PROCESSING and step.state.late
    step = advance(step.state, TERMS, [PaymentFacts(1000, 2)], at(21 * 60))
    assert step.events == ("order.paid", "order.paid_late")
    assert step.state.exception is OrderException.PAID_LATE


def test_late_payment_refund_policy_keeps_it_expired() -> None:
    terms = OrderTerms(1000, 0, 2, timedelta(hours=1), LatePaymentPolicy.REFUND)
    expired = advance(fresh(), terms, [PaymentFacts(300, 5)], at(15 * 60)).state
    assert expired.exception is OrderException.UNDERPAID
    step = advance(expired, terms, [PaymentFacts(300, 5), PaymentFacts(1000, 5, late=True)], at(20 * 60))
    assert step.state.status is OrderStatus.EXPIRED and step.events == ()
    assert step.state.amount_received == 300  # the late money is due back, not counted


def test_what_arrives_late() -> None:
    assert {s for s in OrderStatus if arrives_late(s)} == {
        OrderStatus.EXPIRED,
        OrderStatus.CANCELED,
        OrderStatus.INVALID,
    }


def test_cancel_only_while_open() -> None:
    step = cancel(fresh(), at(1))
    assert step.state.status is OrderStatus.CANCELED and step.events == ("order.canceled",)
    processing = advance(fresh(), TERMS, [PaymentFacts(1000, 0)], at(1)).state
    with pytest.raises(TransitionError):
        cancel(processing, at(2))


# ----- properties -------------------------------------------------------------------------

payment = st.builds(
    PaymentFacts,
    amount=st.integers(min_value=1, max_value=2000),
    confirmations=st.integers(min_value=0, max_value=4),
    rejected=st.booleans(),
)
terms_st = st.builds(
    OrderTerms,
    amount_due=st.integers(min_value=1, max_value=2000),
    tolerance=st.integers(min_value=0, max_value=50),
    confirmations=st.integers(min_value=0, max_value=3),
    monitoring_window=st.just(timedelta(hours=1)),
    late_policy=st.sampled_from(list(LatePaymentPolicy)),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[OrderTerms, list[tuple[float, list[PaymentFacts]]]]:
    """A sequence of (time, all payments seen so far) with confirmations only growing."""
    terms = draw(terms_st)
    steps = draw(st.integers(min_value=1, max_value=8))
    payments: list[PaymentFacts] = []
    t = 0.0
    out = []
    for _ in range(steps):
        t += draw(st.floats(min_value=0, max_value=3000, allow_nan=False))
        action = draw(st.sampled_from(["pay", "confirm", "drop", "wait"]))
        if action == "pay":
            payments.append(PaymentFacts(draw(st.integers(1, 2000)), 0))
        elif action == "confirm" and payments:
            payments = [PaymentFacts(p.amount, p.confirmations + 1, p.rejected) for p in payments]
        elif action == "drop" and payments:
            i = draw(st.integers(0, len(payments) - 1))
            p = payments[i]
            payments[i] = PaymentFacts(p.amount, p.confirmations, True)
        out.append((t, list(payments)))
    return terms, out


@settings(max_examples=300)
@given(histories())
def test_invariants(history: tuple[OrderTerms, list[tuple[float, list[PaymentFacts]]]]) -> None:
    terms, timeline = history
    state = fresh()
    for t, payments in timeline:
        before = state
        step = advance(state, terms, payments, at(t))
        state = step.state
        # Idempotent: the same facts at the same time change nothing more.
        again = advance(state, terms, payments, at(t))
        assert again.events == () and again.state == state
        # One state per event, and an event for every status change.
        assert len(step.events) == len(step.states)
        if state.status is not before.status:
            assert step.events
        # Terminal states stay terminal, but for a paid order whose final money was undone (a deep
        # reorg): it is no longer paid.
        if before.status in TERMINAL and not (
            before.status is OrderStatus.PAID and state.amount_confirmed < terms.amount_due - terms.tolerance
        ):
            assert state.status is before.status
        if before.status is OrderStatus.PAID and state.status is not OrderStatus.PAID:
            assert state.amount_confirmed < before.amount_confirmed and state.paid_at is None
            assert step.events[0] in ("order.processing", "order.reopened", "order.expired")
        # Becoming paid needs enough confirmed money.
        if state.status is OrderStatus.PAID and before.status is not OrderStatus.PAID:
            assert state.amount_confirmed >= terms.amount_due - terms.tolerance
            assert state.paid_at is not None
        # Sums are exact.
        assert state.amount_received == sum(p.amount for p in payments if not p.rejected)
        # The timer is paused exactly while processing.
        assert (state.timer_remaining is not None) == (state.status is OrderStatus.PROCESSING)
        # Exceptions belong to their statuses.
        if state.exception is OrderException.UNDERPAID:
            assert state.status is OrderStatus.EXPIRED
        if state.exception in (OrderException.OVERPAID, OrderException.PAID_LATE):
            assert state.status is OrderStatus.PAID
        assert state.exception is not OrderException.MARKED  # only the merchant marks


# ----- marking by hand (Greenfield's mark status) ------------------------------------------------


def test_mark_paid_settles_whatever_was_received_and_nothing_undoes_it() -> None:
    half = advance(fresh(), TERMS, [PaymentFacts(400, 0)], at(60)).state
    assert half.status is OrderStatus.OPEN
    step = mark(half, OrderStatus.PAID, at(70))
    assert step.events == ("order.paid",)
    assert step.state.status is OrderStatus.PAID and step.state.exception is OrderException.MARKED
    assert step.state.paid_at == at(70) and step.state.timer_remaining is None
    # The payment that was seen is dropped later: the order stays paid, as marked.
    later = advance(step.state, TERMS, [PaymentFacts(400, 0, rejected=True)], at(4000))
    assert later.events == () and later.state.status is OrderStatus.PAID


def test_mark_invalid_and_back() -> None:
    expired = advance(fresh(), TERMS, [], at(3600)).state
    invalid = mark(expired, OrderStatus.INVALID, at(3601))
    assert invalid.events == ("order.invalid",) and invalid.state.exception is OrderException.MARKED
    # A marked invalid order may still be settled by hand, and a paid-by-hand one declared invalid.
    paid = mark(invalid.state, OrderStatus.PAID, at(3602)).state
    assert mark(paid, OrderStatus.INVALID, at(3603)).state.status is OrderStatus.INVALID


def test_money_that_paid_an_order_is_not_declared_away() -> None:
    paid = advance(fresh(), TERMS, [PaymentFacts(1000, 2)], at(60)).state
    assert paid.status is OrderStatus.PAID
    with pytest.raises(TransitionError, match="cannot be marked invalid"):
        mark(paid, OrderStatus.INVALID, at(61))
    with pytest.raises(TransitionError, match="cannot be marked paid"):
        mark(paid, OrderStatus.PAID, at(61))
    with pytest.raises(TransitionError):
        mark(fresh(), OrderStatus.EXPIRED, at(1))


@settings(max_examples=200)
@given(
    histories(),
    st.integers(min_value=0, max_value=7),
    st.sampled_from([OrderStatus.PAID, OrderStatus.INVALID]),
)
def test_a_marked_order_stays_as_marked(
    history: tuple[OrderTerms, list[tuple[float, list[PaymentFacts]]]], when: int, to: OrderStatus
) -> None:
    terms, timeline = history
    state = fresh()
    marked = False
    for i, (t, payments) in enumerate(timeline):
        state = advance(state, terms, payments, at(t)).state
        if i == when and can_mark(state.status, state.exception, to):
            step = mark(state, to, at(t))
            state, marked = step.state, True
            assert step.events == (f"order.{to.value}",)
        if marked:
            assert state.status is to and state.exception is OrderException.MARKED
            assert (state.paid_at is not None) == (to is OrderStatus.PAID)
            assert state.timer_remaining is None
            again = advance(state, terms, payments, at(t))
            assert again.events == () and again.state == state


@given(st.integers(min_value=0, max_value=2**256 - 1), st.integers(min_value=0, max_value=10_000))
def test_tolerance_never_exceeds_share(amount: int, bps: int) -> None:
    tol = tolerance_for(amount, bps)
    assert 0 <= tol <= amount
    assert tol * 10_000 <= amount * bps


# ----- submitted payments (proxy rails) --------------------------------------------------------


def test_submission_is_taken_only_by_an_open_order_for_exactly_the_amount() -> None:
    from kassa.domain.orders import submission_refusal

    assert submission_refusal(fresh(), 1000, 1000) is None
    assert submission_refusal(fresh(), 1000, 999) is not None
    assert submission_refusal(fresh(), 1000, 999)[0] == "amount_mismatch"  # type: ignore[index]
    processing = advance(fresh(), TERMS, [PaymentFacts(1000, 0)], at(60)).state
    assert submission_refusal(processing, 1000, 1000)[0] == "payment_pending"  # type: ignore[index]
    expired = advance(fresh(), TERMS, [], at(3600)).state
    assert submission_refusal(expired, 1000, 1000)[0] == "order_not_open"  # type: ignore[index]


@given(
    amounts=st.lists(st.integers(min_value=1, max_value=2000), max_size=4),
    offered=st.integers(min_value=0, max_value=2**256),
    seconds=st.integers(min_value=0, max_value=7200),
)
def test_a_taken_submission_never_over_or_underpays(amounts: list[int], offered: int, seconds: int) -> None:
    """Whatever happened before, an order that takes a submission is open with nothing received,
    and the submission is exactly what is due: accepting it cannot make the order under- or overpaid."""
    from kassa.domain.orders import submission_refusal

    step = advance(fresh(), TERMS, [PaymentFacts(a, 0, rejected=True) for a in amounts], at(seconds))
    if submission_refusal(step.state, TERMS.amount_due, offered) is None:
        assert step.state.status is OrderStatus.OPEN
        assert step.state.amount_received == 0
        paid = advance(step.state, TERMS, [PaymentFacts(offered, TERMS.confirmations)], at(seconds))
        assert paid.state.status is OrderStatus.PAID
        assert paid.state.exception is None


@given(
    amounts=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=2**256), st.integers(0, 3), st.booleans(), st.booleans()
        ),
        max_size=5,
    ),
    due=st.integers(min_value=1, max_value=2**256),
    status=st.sampled_from(list(OrderStatus)),
    policy=st.sampled_from(list(LatePaymentPolicy)),
)
def test_refund_due_is_never_more_than_what_is_final_and_nothing_while_undecided(
    amounts: list[tuple[int, int, bool, bool]], due: int, status: OrderStatus, policy: LatePaymentPolicy
) -> None:
    from kassa.domain.orders import refund_due

    facts = [PaymentFacts(a, c, rejected, late) for a, c, rejected, late in amounts]
    final = sum(p.amount for p in facts if not p.rejected and p.confirmations >= 2)
    owed = refund_due(status, due, facts, 2, policy)
    assert 0 <= owed <= final
    if status in (OrderStatus.OPEN, OrderStatus.PROCESSING):
        assert owed == 0
    elif status is not OrderStatus.PAID:
        assert owed == final  # an order that ended unpaid keeps nothing
    else:
        assert final - owed <= due  # a paid order keeps at most what was due
