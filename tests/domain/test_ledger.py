"""The pure ledger: every posting balances; replays and any order of the same postings give the same
balances; amounts up to 2**256 stay exact."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain.ledger import (
    Account,
    Entry,
    Posting,
    PostingKind,
    UnbalancedPosting,
    balances,
    payment_confirmed,
    payment_reversed,
)
from kassa.domain.money import MAX_AMOUNT

amounts = st.integers(min_value=1, max_value=MAX_AMOUNT - 1)
currencies = st.sampled_from(["XMR", "BTC", "TWD", "ETH"])
payment_ids = st.integers(min_value=0, max_value=20).map(lambda n: f"pay_{n}")


def _posting(pid: str, currency: str, amount: int, reversed_: bool) -> Posting:
    return (payment_reversed if reversed_ else payment_confirmed)(pid, currency, amount)


postings = st.builds(_posting, payment_ids, currencies, amounts, st.booleans())


@given(postings)
def test_every_built_posting_balances(posting: Posting) -> None:
    posting.check()
    assert sum(e.amount for e in posting.entries) == 0


@given(
    st.lists(postings, max_size=30),
    st.randoms(use_true_random=False),
    st.lists(st.integers(0, 29), max_size=10),
)
def test_replays_and_any_order_give_the_same_balances(
    events: list[Posting], rng: object, replays: list[int]
) -> None:
    first_by_key: dict[str, Posting] = {}
    for posting in events:
        first_by_key.setdefault(posting.key, posting)
    # What the store keeps is the first posting of each key: replay those, in any order.
    kept = list(first_by_key.values())
    shuffled = kept + [kept[i % len(kept)] for i in replays] if kept else []
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert balances(shuffled) == balances(kept)
    per_currency: dict[str, int] = {}
    for (_, currency), total in balances(kept).items():
        per_currency[currency] = per_currency.get(currency, 0) + total
    assert all(total == 0 for total in per_currency.values())  # every unit that came in is somewhere


@given(amounts)
def test_amounts_up_to_2_256_are_exact(amount: int) -> None:
    result = balances([payment_confirmed("pay_1", "ETH", amount)])
    assert result[(Account.BALANCE, "ETH")] == amount and result[(Account.INCOMING, "ETH")] == -amount


@pytest.mark.parametrize(
    "entries",
    [
        (Entry(Account.BALANCE, "XMR", 5),),
        (Entry(Account.BALANCE, "XMR", 5), Entry(Account.INCOMING, "XMR", -4)),
        (Entry(Account.BALANCE, "XMR", 5), Entry(Account.INCOMING, "BTC", -5)),
        (Entry(Account.BALANCE, "XMR", 0), Entry(Account.INCOMING, "XMR", 0)),
        (Entry(Account.BALANCE, "XMR", MAX_AMOUNT), Entry(Account.INCOMING, "XMR", -MAX_AMOUNT)),
        (Entry(Account.BALANCE, "XMR", True), Entry(Account.INCOMING, "XMR", -1)),
    ],
)
def test_unbalanced_or_bad_postings_are_refused(entries: tuple[Entry, ...]) -> None:
    with pytest.raises(UnbalancedPosting):
        Posting("k", PostingKind.PAYMENT, entries).check()


def test_a_posting_needs_a_key() -> None:
    balanced = (Entry(Account.BALANCE, "X", 1), Entry(Account.INCOMING, "X", -1))
    Posting("k", PostingKind.PAYMENT, balanced).check()
    for key in ("", "k" * 201):
        with pytest.raises(UnbalancedPosting, match="key"):
            Posting(key, PostingKind.PAYMENT, balanced).check()
