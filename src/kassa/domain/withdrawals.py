"""How a merchant's received money leaves Kassa for the merchant's own wallet (KnockturnAllee's
withdrawal policies, carried out by services/payouts.py; docs/payouts.md)."""

from __future__ import annotations

from enum import StrEnum


class WithdrawalPolicy(StrEnum):
    IMMEDIATE = "immediate"  # automatic, as soon as a payment is final
    DAILY = "daily"  # automatic, once a day
    MANUAL = "manual"  # the merchant asks for it (the merchant's wallet need not listen)


def withdrawal_problem(
    policy: WithdrawalPolicy, url: str | None, payout_address: bool = False
) -> tuple[str, str] | None:
    """Why these settings cannot work, as (setting, message), or None: automatic withdrawals need
    somewhere to send: the merchant's wallet listening on an HTTPS endpoint (Grin), or a rail's
    `payout_address`."""
    if url is not None and not url.startswith("https://"):
        return "withdrawal_url", "withdrawal_url must be an https:// URL"
    if policy is not WithdrawalPolicy.MANUAL and not url and not payout_address:
        return (
            "withdrawal_policy",
            f"withdrawal_policy {policy.value!r} needs somewhere to pay out: a rail's payout_address "
            "(PUT /api/v1/payment-methods/{rail}), or withdrawal_url (a Grin wallet's HTTPS endpoint)",
        )
    return None
