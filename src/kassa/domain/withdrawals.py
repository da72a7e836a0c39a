"""How a merchant's received money leaves Kassa for the merchant's own wallet (KnockturnAllee's
withdrawal policies). Stored and shown now; carried out by the payouts work."""

from __future__ import annotations

from enum import StrEnum


class WithdrawalPolicy(StrEnum):
    IMMEDIATE = "immediate"  # automatic, as soon as a payment is final
    DAILY = "daily"  # automatic, once a day
    MANUAL = "manual"  # the merchant asks for it (the merchant's wallet need not listen)


def withdrawal_problem(policy: WithdrawalPolicy, url: str | None) -> tuple[str, str] | None:
    """Why these settings cannot work, as (setting, message), or None: automatic withdrawals need
    the merchant's wallet to listen on an HTTPS endpoint."""
    if url is not None and not url.startswith("https://"):
        return "withdrawal_url", "withdrawal_url must be an https:// URL"
    if policy is not WithdrawalPolicy.MANUAL and not url:
        return (
            "withdrawal_policy",
            f"withdrawal_policy {policy.value!r} needs withdrawal_url (the wallet's HTTPS endpoint)",
        )
    return None
