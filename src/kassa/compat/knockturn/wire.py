"""KnockturnAllee's wire shapes: the create request, the order as KA shows it, and the JSON-RPC
envelopes of the Grin wallet Foreign API that `grin-wallet send -d <order URL>` speaks."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from kassa.api.schemas import Email
from kassa.domain.money import MAX_AMOUNT

FOREIGN_API_VERSION = 2
SLATE_VERSIONS = ["V4", "V3"]  # what Kassa reads (kassa.rails.grin.slate) and forwards

# JSON-RPC 2.0 error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


class KAMoney(BaseModel):
    model_config = ConfigDict(extra="ignore")

    amount: Annotated[StrictInt, Field(gt=0, lt=MAX_AMOUNT)]
    currency: Annotated[StrictStr, Field(min_length=1, max_length=10)]


class KAOrderCreate(BaseModel):
    """`POST /merchants/{merchantId}`: fields KA does not know are ignored, as KA did."""

    model_config = ConfigDict(extra="ignore")

    order_id: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    amount: KAMoney
    confirmations: Annotated[StrictInt, Field(ge=0, le=10_000)] | None = None
    email: Email | None = None


def ka_status(order: dict[str, Any], last_submission: str | None) -> str:
    """KA's order status: UNPAID, RECEIVED (the wallet signed; waiting for confirmations),
    REJECTED (the wallet refused the slate, or the transaction was dropped: pay again), CONFIRMED,
    EXPIRED; CANCELED and INVALID for Kassa's own ends (KA had none)."""
    status = order["status"]
    if status == "open":
        payments = order["payments"]
        dropped = bool(payments) and payments[-1]["status"] == "rejected"
        return "REJECTED" if dropped or last_submission == "refused" else "UNPAID"
    return {
        "processing": "RECEIVED",
        "paid": "CONFIRMED",
        "expired": "EXPIRED",
        "canceled": "CANCELED",
        "invalid": "INVALID",
    }[status]


def grin_quote(order: dict[str, Any]) -> dict[str, Any] | None:
    return next((q for q in order["payment_methods"] if q["currency"] == "GRIN"), None)


def current_confirmations(order: dict[str, Any]) -> int:
    live = [p["confirmations"] for p in order["payments"] if p["status"] != "rejected"]
    return min(live) if live else 0


def ka_order(
    order: dict[str, Any], merchant_id: str, last_submission: str | None, *, private: bool
) -> dict[str, Any]:
    """The order as KA's JSON; `private` (the merchant's own view) adds the customer's email."""
    quote = grin_quote(order)
    body: dict[str, Any] = {
        "id": order["id"],
        "merchant_id": merchant_id,
        "order_id": order["order_id"] or order["id"],
        "status": ka_status(order, last_submission),
        "amount": {"amount": order["amount"], "currency": order["currency"]},
        "grin_amount": quote["amount"] if quote else None,
        "payment_url": quote["address"] if quote else None,
        "confirmations": order["confirmations"],
        "current_confirmations": current_confirmations(order),
        "expires_at": order["expires_at"],
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
    }
    if private:
        body["email"] = order["email"]
    return body


def rpc_result(id: Any, result: Any) -> dict[str, Any]:
    return {"id": id, "jsonrpc": "2.0", "result": result}


def rpc_error(id: Any, code: int, message: str) -> dict[str, Any]:
    return {"id": id, "jsonrpc": "2.0", "error": {"code": code, "message": message}}


def wallet_err(message: str) -> dict[str, Any]:
    """An application error as the Grin wallet's Foreign API reports one (`{"Err": …}` in `result`)."""
    return {"Err": {"GenericError": message}}


def receive_tx_slate(params: Any) -> Any:
    """The slate of a `receive_tx` call: `[slate, dest_acct_name, r_addr]` or `{"slate": …}`."""
    if isinstance(params, list) and params:
        return params[0]
    if isinstance(params, dict) and "slate" in params:
        return params["slate"]
    return None
