"""Double-entry bookkeeping of every unit of money that passes through Kassa (pure: no I/O).

Accounts are kept per merchant, per currency, and apart for test money. An entry moves an amount
into an account (positive: a debit) or out of it (negative: a credit); a posting is a set of entries
that sums to zero in each currency, under a key that names the fact it records
(`payment:<id>:confirmed`), so the same fact can never be posted twice. Balances are sums of
entries. Reading the accounts (sums of all entries ever):

- `incoming`: minus what came in through the rails and was not sent back: where the money came from;
- `balance`: what the merchant is owed;
- `refunds_payable`: owed back to customers, not sent yet;
- `fees`: the operator's fees;
- `payouts_in_flight`: being paid out to the merchant;
- `paid_out`: paid out to the merchant;
- `network_fees`: paid to the network (miners) by transactions Kassa sent, taken from what they sent.

So `incoming + balance + refunds_payable + fees + payouts_in_flight + paid_out + network_fees == 0`
always, per merchant and currency: every unit that came in is somewhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from kassa.domain.money import MAX_AMOUNT


class Account(StrEnum):
    INCOMING = "incoming"
    BALANCE = "balance"
    REFUNDS_PAYABLE = "refunds_payable"
    FEES = "fees"
    PAYOUTS_IN_FLIGHT = "payouts_in_flight"
    PAID_OUT = "paid_out"
    NETWORK_FEES = "network_fees"


class PostingKind(StrEnum):
    PAYMENT = "payment"  # a payment became final
    PAYMENT_REVERSAL = "payment_reversal"  # a final payment was undone (a reorg deeper than required)
    REFUND = "refund"  # money set aside for a refund, sent back, or released
    PAYOUT = "payout"  # the merchant's balance set aside for a payout, paid out, or released


class UnbalancedPosting(ValueError):
    """A posting that does not sum to zero per currency, or holds a bad entry."""


@dataclass(frozen=True, slots=True)
class Entry:
    account: Account
    currency: str
    amount: int  # positive: into the account (debit); negative: out of it (credit)


@dataclass(frozen=True, slots=True)
class Posting:
    key: str  # unique: the fact recorded, e.g. "payment:pay_…:confirmed"
    kind: PostingKind
    entries: tuple[Entry, ...]

    def check(self) -> None:
        """Raise UnbalancedPosting unless this posting can be recorded."""
        if not self.key or len(self.key) > 200:
            raise UnbalancedPosting("a posting needs a key of 1 to 200 characters")
        if len(self.entries) < 2:
            raise UnbalancedPosting(f"{self.key}: a posting has at least two entries")
        sums: dict[str, int] = defaultdict(int)
        for entry in self.entries:
            if isinstance(entry.amount, bool) or not isinstance(entry.amount, int) or entry.amount == 0:
                raise UnbalancedPosting(f"{self.key}: an entry moves a non-zero whole amount")
            if abs(entry.amount) >= MAX_AMOUNT:
                raise UnbalancedPosting(f"{self.key}: an entry is beyond 2**256")
            sums[entry.currency] += entry.amount
        broken = sorted(c for c, total in sums.items() if total)
        if broken:
            raise UnbalancedPosting(f"{self.key}: entries do not sum to zero in {', '.join(broken)}")


def _move(
    key: str, kind: PostingKind, currency: str, amount: int, source: Account, target: Account
) -> Posting:
    """`amount` from `source` to `target`."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise UnbalancedPosting(f"{key}: the amount moved must be a positive whole number")
    return Posting(key, kind, (Entry(source, currency, -amount), Entry(target, currency, amount)))


def payment_confirmed_key(payment_id: str) -> str:
    return f"payment:{payment_id}:confirmed"


def payment_confirmed(payment_id: str, currency: str, amount: int) -> Posting:
    """A payment became final: the merchant is owed it."""
    return _move(
        payment_confirmed_key(payment_id),
        PostingKind.PAYMENT,
        currency,
        amount,
        Account.INCOMING,
        Account.BALANCE,
    )


def payment_reversed(payment_id: str, currency: str, amount: int) -> Posting:
    """A final payment was undone: what it brought is taken back from the merchant's balance."""
    return _move(
        f"payment:{payment_id}:reversed",
        PostingKind.PAYMENT_REVERSAL,
        currency,
        amount,
        Account.BALANCE,
        Account.INCOMING,
    )


def balances(postings: Iterable[Posting]) -> dict[tuple[Account, str], int]:
    """Each account's balance after these postings, a posting counted once per key (as stored)."""
    seen: set[str] = set()
    totals: dict[tuple[Account, str], int] = defaultdict(int)
    for posting in postings:
        if posting.key in seen:
            continue
        seen.add(posting.key)
        for entry in posting.entries:
            totals[(entry.account, entry.currency)] += entry.amount
    return dict(totals)


def refund_reserved(refund_id: str, currency: str, amount: int) -> Posting:
    """A refund was made: its amount is no longer the merchant's but owed back to the customer."""
    return _move(
        f"refund:{refund_id}:reserved",
        PostingKind.REFUND,
        currency,
        amount,
        Account.BALANCE,
        Account.REFUNDS_PAYABLE,
    )


def _refund_out(amount: int, received: int, network_fee: int) -> list[tuple[Account, int]]:
    return [
        (Account.REFUNDS_PAYABLE, -amount),
        (Account.INCOMING, received),
        (Account.NETWORK_FEES, network_fee),
        (Account.BALANCE, amount - received - network_fee),
    ]


def refund_sent(
    refund_id: str, currency: str, amount: int, received: int | None = None, network_fee: int = 0
) -> Posting:
    """The refund went out: the customer `received` it back the way it came in, the network took
    its fee out of the amount; what the transaction did not use (if anything) is the merchant's."""
    got = amount - network_fee if received is None else received
    moves = _refund_out(amount, got, network_fee)
    return _posting(f"refund:{refund_id}:sent", PostingKind.REFUND, currency, *moves)


def refund_released(refund_id: str, currency: str, amount: int) -> Posting:
    """A refund was canceled or failed before anything went out: the merchant is owed it again."""
    return _move(
        f"refund:{refund_id}:released",
        PostingKind.REFUND,
        currency,
        amount,
        Account.REFUNDS_PAYABLE,
        Account.BALANCE,
    )


def refund_returned(
    refund_id: str, currency: str, amount: int, received: int | None = None, network_fee: int = 0
) -> Posting:
    """A refund that had gone out failed (its transaction was dropped): `refund_sent` undone, so it
    is owed to the customer again."""
    got = amount - network_fee if received is None else received
    moves = [(account, -value) for account, value in _refund_out(amount, got, network_fee)]
    return _posting(f"refund:{refund_id}:returned", PostingKind.REFUND, currency, *moves)


def _posting(key: str, kind: PostingKind, currency: str, *moves: tuple[Account, int]) -> Posting:
    """A posting of these (account, amount) moves in one currency, leaving out those of zero."""
    posting = Posting(
        key, kind, tuple(Entry(account, currency, amount) for account, amount in moves if amount)
    )
    posting.check()
    return posting


def payout_reserved(payout_id: str, currency: str, amount: int, fee: int) -> Posting:
    """A payout was made: `amount` leaves the merchant's balance, the operator's `fee` out of it."""
    return _posting(
        f"payout:{payout_id}:reserved",
        PostingKind.PAYOUT,
        currency,
        (Account.BALANCE, -amount),
        (Account.PAYOUTS_IN_FLIGHT, amount - fee),
        (Account.FEES, fee),
    )


def payout_paid(payout_id: str, currency: str, in_flight: int, received: int, network_fee: int) -> Posting:
    """The payout's transaction is final: the merchant `received`, the network took `network_fee`;
    what the transaction did not use of what was in flight (if anything) is the merchant's again."""
    return _posting(
        f"payout:{payout_id}:paid",
        PostingKind.PAYOUT,
        currency,
        (Account.PAYOUTS_IN_FLIGHT, -in_flight),
        (Account.PAID_OUT, received),
        (Account.NETWORK_FEES, network_fee),
        (Account.BALANCE, in_flight - received - network_fee),
    )


def payout_released(payout_id: str, currency: str, in_flight: int, fee: int) -> Posting:
    """A payout failed or was canceled before it was paid: all of it, fee too, is the merchant's again."""
    return _posting(
        f"payout:{payout_id}:released",
        PostingKind.PAYOUT,
        currency,
        (Account.PAYOUTS_IN_FLIGHT, -in_flight),
        (Account.FEES, -fee),
        (Account.BALANCE, in_flight + fee),
    )
