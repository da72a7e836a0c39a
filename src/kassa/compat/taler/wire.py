"""GNU Taler's wire shapes for `GET /public/poll-payment` (shared/seeds/taler-poll-payment-api.md):
the query, `PollPaymentResponse`, and Taler's error body `{"code": <TALER_ErrorCode>, "hint": …}`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kassa.domain.contract import parse_hash
from kassa.domain.money import Money
from kassa.errors import InvalidRequest, KassaError, NotFound
from kassa.services.sessions import ContractMismatch, SessionStatus

# TALER_ErrorCode values (GNU Taler's taler-error-codes, as in taler-util's taler-error-codes.ts).
GENERIC_PARAMETER_MISSING = 25  # 400
GENERIC_PARAMETER_MALFORMED = 26  # 400
MERCHANT_GENERIC_ORDER_UNKNOWN = 2005  # 404
MERCHANT_GENERIC_CONTRACT_HASH_DOES_NOT_MATCH_ORDER = 2009  # 403

MAX_TIMEOUT_DIGITS = 9  # longer is still a valid timeout, capped like any other
_DIGITS = re.compile(r"[0-9]+")


class TalerError(Exception):
    """An error as Taler's merchant backend answers one."""

    def __init__(self, status: int, code: int, hint: str) -> None:
        super().__init__(hint)
        self.status = status
        self.code = code
        self.hint = hint

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "hint": self.hint}

    @classmethod
    def of(cls, exc: KassaError) -> TalerError | None:
        """The Taler error for what a service refused; None for anything else."""
        if isinstance(exc, ContractMismatch):
            return cls(403, MERCHANT_GENERIC_CONTRACT_HASH_DOES_NOT_MATCH_ORDER, exc.message)
        if isinstance(exc, NotFound):
            return cls(404, MERCHANT_GENERIC_ORDER_UNKNOWN, "no order with this order_id")
        if isinstance(exc, InvalidRequest):
            return cls(400, GENERIC_PARAMETER_MALFORMED, exc.message)
        return None


@dataclass(frozen=True, slots=True)
class PollRequest:
    order_id: str
    h_contract: bytes
    session_id: str | None
    timeout: int  # seconds; 0 answers at once


def parse_poll(query: Mapping[str, str]) -> PollRequest:
    """The query of `/public/poll-payment`; an empty `session_id` is no session."""
    for name in ("order_id", "h_contract", "session_id", "timeout"):
        if "\x00" in query.get(name, ""):  # no Kassa id or text column can hold one
            raise TalerError(400, GENERIC_PARAMETER_MALFORMED, f"{name} must not contain NUL characters")
    order_id = query.get("order_id")
    if not order_id:
        raise TalerError(400, GENERIC_PARAMETER_MISSING, "the order_id parameter is missing")
    text = query.get("h_contract")
    if not text:
        raise TalerError(400, GENERIC_PARAMETER_MISSING, "the h_contract parameter is missing")
    h_contract = parse_hash(text)
    if h_contract is None:
        raise TalerError(
            400,
            GENERIC_PARAMETER_MALFORMED,
            "h_contract is not a contract hash (103 characters of Crockford base32)",
        )
    timeout = 0
    raw = query.get("timeout")
    if raw is not None:
        if not _DIGITS.fullmatch(raw):
            raise TalerError(
                400, GENERIC_PARAMETER_MALFORMED, "timeout must be a non-negative integer (seconds)"
            )
        timeout = int(raw) if len(raw) <= MAX_TIMEOUT_DIGITS else 10**MAX_TIMEOUT_DIGITS
    return PollRequest(order_id, h_contract, query.get("session_id") or None, timeout)


def poll_answer(status: SessionStatus) -> dict[str, Any]:
    """`PollPaymentPaidResponse` or `PollPaymentUnpaidResponse`."""
    order = status.order
    if status.paid:
        refunded = order["amount_refunded"]
        body: dict[str, Any] = {"paid": True, "refunded": refunded > 0}
        if refunded > 0:  # in the money that came: the payment method's currency
            body["refund_amount"] = Money(refunded, order["payment_currency"] or order["currency"]).to_text()
        return body
    body = {"paid": False, "taler_pay_uri": order["checkout_url"]}
    if status.already_paid_order_id is not None:
        body["already_paid_order_id"] = status.already_paid_order_id
    return body
