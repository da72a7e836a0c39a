"""Payouts and refunds in the pure ledger: every posting balances; a payout's life posts its amount
exactly once out of the balance (paid out, or released back in full); any walk through the payout
and refund state machines ends with every unit accounted for; fees and amounts up to 2**256 exact."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain.ledger import (
    Account,
    Posting,
    balances,
    payment_confirmed,
    payout_paid,
    payout_released,
    payout_reserved,
    refund_released,
    refund_reserved,
    refund_returned,
    refund_sent,
)
from kassa.domain.money import MAX_AMOUNT
from kassa.domain.payouts import (
    MOVES,
    PayoutStatus,
    PayoutTransitionError,
    daily_period,
    move,
    operator_fee,
    payout_refusal,
)

amounts = st.integers(min_value=2, max_value=MAX_AMOUNT - 1)
fee_bps = st.integers(min_value=0, max_value=9_999)


@st.composite
def payout_amounts(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """(amount, operator fee, received, network fee) as a payout can carry them."""
    amount = draw(amounts)
    fee = operator_fee(amount, draw(fee_bps))
    in_flight = amount - fee
    network_fee = draw(st.integers(min_value=0, max_value=in_flight - 1))
    received = draw(st.integers(min_value=1, max_value=in_flight - network_fee))
    return amount, fee, received, network_fee


def _per_currency_zero(postings: list[Posting]) -> bool:
    totals: dict[str, int] = defaultdict(int)
    for (_, currency), value in balances(postings).items():
        totals[currency] += value
    return all(total == 0 for total in totals.values())


@given(payout_amounts())
def test_a_paid_payout_leaves_the_balance_once_with_both_fees(values: tuple[int, int, int, int]) -> None:
    amount, fee, received, network_fee = values
    postings = [
        payment_confirmed("pay_1", "XMR", amount),
        payout_reserved("po_1", "XMR", amount, fee),
        payout_paid("po_1", "XMR", amount - fee, received, network_fee),
    ]
    for posting in postings:
        posting.check()
    result = balances(postings)
    assert result.get((Account.PAYOUTS_IN_FLIGHT, "XMR"), 0) == 0
    assert result.get((Account.PAID_OUT, "XMR"), 0) == received
    assert result.get((Account.FEES, "XMR"), 0) == fee
    assert result.get((Account.NETWORK_FEES, "XMR"), 0) == network_fee
    assert result.get((Account.BALANCE, "XMR"), 0) == amount - fee - received - network_fee
    assert _per_currency_zero(postings)


@given(payout_amounts())
def test_a_released_payout_gives_everything_back(values: tuple[int, int, int, int]) -> None:
    amount, fee, _received, _network_fee = values
    postings = [
        payment_confirmed("pay_1", "XMR", amount),
        payout_reserved("po_1", "XMR", amount, fee),
        payout_released("po_1", "XMR", amount - fee, fee),
    ]
    result = balances(postings)
    assert result[(Account.BALANCE, "XMR")] == amount
    assert all(
        value == 0
        for (account, _), value in result.items()
        if account not in (Account.BALANCE, Account.INCOMING)
    )


@given(
    st.integers(min_value=1, max_value=MAX_AMOUNT - 1),
    st.data(),
)
def test_a_refund_sent_then_dropped_is_owed_again_exactly(amount: int, data: st.DataObject) -> None:
    network_fee = data.draw(st.integers(min_value=0, max_value=amount - 1))
    received = data.draw(st.integers(min_value=1, max_value=amount - network_fee))
    sent = [
        payment_confirmed("pay_1", "ETH", amount),
        refund_reserved("rfd_1", "ETH", amount),
        refund_sent("rfd_1", "ETH", amount, received, network_fee),
    ]
    result = balances(sent)
    assert result.get((Account.NETWORK_FEES, "ETH"), 0) == network_fee
    assert result.get((Account.REFUNDS_PAYABLE, "ETH"), 0) == 0
    assert result.get((Account.BALANCE, "ETH"), 0) == amount - received - network_fee
    dropped = [*sent, refund_returned("rfd_1", "ETH", amount, received, network_fee)]
    again = balances(dropped)
    assert (
        again[(Account.REFUNDS_PAYABLE, "ETH")] == amount and again.get((Account.NETWORK_FEES, "ETH"), 0) == 0
    )
    released = balances([*dropped, refund_released("rfd_1", "ETH", amount)])
    assert released[(Account.BALANCE, "ETH")] == amount
    assert _per_currency_zero(sent) and _per_currency_zero(dropped)


# ----- the state machine: any walk posts the payout's amount out exactly once -------------------

POSTS = {PayoutStatus.CONFIRMED: "paid", PayoutStatus.FAILED: "released", PayoutStatus.CANCELED: "released"}


@given(
    st.sampled_from([PayoutStatus.SENDING, PayoutStatus.AWAITING_SIGNATURE]),
    st.lists(st.sampled_from(list(PayoutStatus)), max_size=12),
    payout_amounts(),
)
def test_any_walk_posts_paid_or_released_at_most_once(
    start: PayoutStatus, attempts: list[PayoutStatus], values: tuple[int, int, int, int]
) -> None:
    amount, fee, received, network_fee = values
    status = start
    postings = [payment_confirmed("pay_1", "BTC", amount), payout_reserved("po_1", "BTC", amount, fee)]
    for target in attempts:
        if target is status:
            continue  # the same change again changes nothing (the service answers as it is)
        try:
            status = move(status, target)
        except PayoutTransitionError:
            assert target not in MOVES[status]
            continue
        if POSTS.get(status) == "paid":
            postings.append(payout_paid("po_1", "BTC", amount - fee, received, network_fee))
        elif POSTS.get(status) == "released":
            postings.append(payout_released("po_1", "BTC", amount - fee, fee))
    assert (
        len([p for p in postings if p.key.startswith("payout:po_1:") and not p.key.endswith("reserved")]) <= 1
    )
    assert _per_currency_zero(postings)
    result = balances(postings)
    if status is PayoutStatus.CONFIRMED:
        assert result[(Account.PAID_OUT, "BTC")] == received
    elif status in (PayoutStatus.FAILED, PayoutStatus.CANCELED):
        assert result[(Account.BALANCE, "BTC")] == amount
    else:  # still on its way: the amount is in flight, not the merchant's
        assert result.get((Account.BALANCE, "BTC"), 0) == 0


# ----- the rules ----------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=MAX_AMOUNT - 1), fee_bps)
def test_the_operator_fee_is_rounded_down_and_never_the_whole(amount: int, bps: int) -> None:
    fee = operator_fee(amount, bps)
    assert fee * 10_000 <= amount * bps < (fee + 1) * 10_000
    assert fee < amount or amount == 0


def test_operator_fee_bounds() -> None:
    assert operator_fee(10_001, 150) == 150 and operator_fee(99, 100) == 0
    with pytest.raises(ValueError, match="basis points"):
        operator_fee(1, 10_001)


@pytest.mark.parametrize(
    ("amount", "available", "minimum", "fee", "words"),
    [
        (0, 0, 0, 0, "nothing to pay out"),
        (-3, 10, 0, 0, "positive"),
        (11, 10, 0, 0, "at most 10"),
        (5, -2, 0, 0, "nothing to pay out"),
        (5, 10, 6, 0, "minimum payout is 6"),
        (5, 10, 0, 5, "operator's fee"),
    ],
)
def test_payout_refusals_name_the_amount(
    amount: int, available: int, minimum: int, fee: int, words: str
) -> None:
    refusal = payout_refusal(amount, available, minimum, fee)
    assert refusal is not None and refusal[0] == "amount" and words in refusal[1]
    assert payout_refusal(5, 10, 5, 4) is None


def test_the_daily_period_starts_at_the_merchants_hour() -> None:
    assert daily_period(datetime(2026, 12, 3, 5, 59, tzinfo=UTC), 6) is None
    assert daily_period(datetime(2026, 12, 3, 6, 0, tzinfo=UTC), 6) == "2026-12-03"
    assert daily_period(datetime(2026, 12, 3, 23, 0, tzinfo=UTC), 0) == "2026-12-03"
