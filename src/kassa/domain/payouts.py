"""Payouts: the merchant's balance leaving Kassa's wallet for the merchant's own (pure: no I/O).

A payout takes `amount` from the merchant's balance; the operator's fee (basis points of it) goes to
the fees account and the rest is sent, the network's fee taken from what is sent. Its life:

    sending -> sent -> confirmed            (Kassa's wallet spends)
    awaiting_signature -> sent -> confirmed (manual: the merchant signs the unsigned transaction)
    awaiting_signature -> canceled
    sending | sent -> failed

`sending` is recorded before the rail is asked to spend, so that after a crash the worker asks the
wallet whether the payout's transaction already went out before it ever sends again. A payout that
fails or is canceled gives all of its amount, the fee too, back to the balance.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class PayoutStatus(StrEnum):
    AWAITING_SIGNATURE = "awaiting_signature"
    SENDING = "sending"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    CANCELED = "canceled"


class PayoutOrigin(StrEnum):
    MANUAL = "manual"  # asked for through the API or the CLI
    IMMEDIATE = "immediate"  # the policy, after a payment became final
    DAILY = "daily"  # the policy, once a day at the merchant's hour


MOVES: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    PayoutStatus.AWAITING_SIGNATURE: frozenset({PayoutStatus.SENT, PayoutStatus.CANCELED}),
    PayoutStatus.SENDING: frozenset({PayoutStatus.SENT, PayoutStatus.FAILED}),
    PayoutStatus.SENT: frozenset({PayoutStatus.CONFIRMED, PayoutStatus.FAILED}),
    PayoutStatus.CONFIRMED: frozenset(),
    PayoutStatus.FAILED: frozenset(),
    PayoutStatus.CANCELED: frozenset(),
}
OPEN = frozenset({PayoutStatus.AWAITING_SIGNATURE, PayoutStatus.SENDING, PayoutStatus.SENT})
MAX_FEE_BPS = 10_000


class PayoutTransitionError(ValueError):
    pass


def move(current: PayoutStatus, target: PayoutStatus) -> PayoutStatus:
    """The next status; PayoutTransitionError when a payout cannot go there from where it is."""
    if target not in MOVES[current]:
        raise PayoutTransitionError(f"a {current.value} payout cannot become {target.value}")
    return target


def operator_fee(amount: int, fee_bps: int) -> int:
    """The operator's fee on a payout of `amount`: `fee_bps` basis points, rounded down."""
    if not 0 <= fee_bps <= MAX_FEE_BPS:
        raise ValueError("a fee is 0 to 10000 basis points")
    return amount * fee_bps // MAX_FEE_BPS


def payout_refusal(amount: int, available: int, minimum: int, fee: int) -> tuple[str, str] | None:
    """Why a payout of `amount` cannot be made now, as (the field at fault, why), or None."""
    if available <= 0:
        return "amount", f"nothing to pay out: the balance is {available}"
    if amount <= 0:
        return "amount", "the amount must be a positive whole number of minor units"
    if amount > available:
        return "amount", f"at most {max(available, 0)} is available to pay out"
    if amount < minimum:
        return "amount", f"the minimum payout is {minimum}"
    if amount - fee <= 0:
        return "amount", f"the amount does not cover the operator's fee of {fee}"
    return None


def daily_period(now: datetime, hour: int) -> str | None:
    """The day whose daily payout is due at `now` (UTC), as 'YYYY-MM-DD', or None before the
    merchant's hour: one daily payout per day, made at or after that hour."""
    if now.hour < hour:
        return None
    return now.date().isoformat()
