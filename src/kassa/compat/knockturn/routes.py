"""KnockturnAllee's routes, at exactly the seed's paths (shared/seeds/knockturnallee-payment-flow.md).

- `POST /merchants/{merchantId}`: the merchant registers an order (API key or HTTP Basic).
- `GET  /merchants/{merchantId}/orders/{orderId}`: the order page (HTML; JSON on
  `Accept: application/json`), whose URL is also the payment URL.
- `POST /merchants/{merchantId}/orders/{orderId}`: a Grin slate, forwarded to the merchant's wallet.
- `POST /merchants/{merchantId}/orders/{orderId}/v2/foreign`: the same as the wallet Foreign API's
  JSON-RPC (`check_version`, `receive_tx`), so `grin-wallet send -d <order URL>` works.

Errors are Kassa's one error shape, except on the JSON-RPC route, which answers as a Grin wallet.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from kassa.api.auth import authorize, runtime_of
from kassa.api.errors import kassa_error_response
from kassa.checkout.present import qr_svg
from kassa.checkout.templating import environment, render_page
from kassa.compat import body
from kassa.compat.knockturn.wire import (
    FOREIGN_API_VERSION,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SLATE_VERSIONS,
    KAOrderCreate,
    grin_quote,
    ka_order,
    receive_tx_slate,
    rpc_error,
    rpc_result,
    wallet_err,
)
from kassa.domain.money import Money
from kassa.errors import AuthenticationFailed, Conflict, InvalidRequest, KassaError, NotFound
from kassa.services.merchants import BASIC_CHALLENGE, Merchant
from kassa.services.orders import NewOrder
from kassa.services.submissions import PaymentRefused

router = APIRouter(include_in_schema=False)

_env = environment("kassa.compat.knockturn")
_CHALLENGE = {"WWW-Authenticate": f"Bearer, {BASIC_CHALLENGE['WWW-Authenticate']}"}
FINAL = frozenset({"CONFIRMED", "EXPIRED", "CANCELED", "INVALID"})


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status, headers=headers, media_type="application/json"
    )


async def _body_json(request: Request) -> Any:
    try:  # floats stay floats: a slate goes on to the wallet as it came
        return body.loads(await request.body(), exact=False)
    except body.BodyInvalid as exc:
        raise InvalidRequest(str(exc), code="body_invalid") from None


async def _authenticated(request: Request, merchant_id: str) -> Merchant:
    """The merchant, by its API key (`Authorization: Bearer`) or its id and password (HTTP Basic)."""
    runtime = runtime_of(request)
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        principal = await authorize(runtime, credentials, "orders:write")
        if principal.merchant_id != merchant_id:  # another merchant's key
            raise NotFound(f"no merchant {merchant_id!r}", param="merchantId")
        return await runtime.merchants.get(merchant_id)
    if scheme.lower() == "basic" and credentials:
        try:
            user, sep, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8
            user, sep, password = "", "", ""
        if not sep or user != merchant_id:
            raise AuthenticationFailed(
                "HTTP Basic needs the merchant id as the user and its password",
                code="invalid_credentials",
                headers=_CHALLENGE,
            )
        return await runtime.merchants.check_password(merchant_id, password)
    raise AuthenticationFailed(
        "send the merchant's API key ('Authorization: Bearer <key>') or its id and password (HTTP Basic)",
        headers=_CHALLENGE,
    )


@router.post("/merchants/{merchant_id}")
async def create_order(request: Request, merchant_id: str) -> Response:
    try:
        merchant = await _authenticated(request, merchant_id)
        try:
            body = KAOrderCreate.model_validate(await _body_json(request))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "body"
            raise InvalidRequest(f"{where}: {err['msg']}", param=where) from None
        if not merchant.rails.get("grin"):
            raise Conflict(
                "this merchant takes no Grin yet: its grin payment rail is not configured and enabled",
                code="rail_unavailable",
            )
        runtime = runtime_of(request)
        result = await runtime.orders.create(
            merchant.pk,
            NewOrder(
                currency=body.amount.currency.upper(),
                amount=body.amount.amount,
                merchant_order_id=body.order_id,
                email=body.email,
                confirmations=body.confirmations,
                payment_methods=["GRIN"],
            ),
        )
    except KassaError as exc:
        return kassa_error_response(exc)
    order = ka_order(result.order, merchant_id, None, private=True)
    return _json(order, 201 if result.created else 200, headers={"Location": order["payment_url"]})


async def _order(request: Request, merchant_id: str, order_ref: str) -> tuple[Merchant, dict[str, Any]]:
    runtime = runtime_of(request)
    merchant = await runtime.merchants.get(merchant_id)
    order = await runtime.orders.get(merchant.pk, order_ref)
    if grin_quote(order) is None:  # a Kassa order that does not take Grin is not a KA order
        raise NotFound(f"no order {order_ref!r}", param="orderId")
    return merchant, order


@router.get("/merchants/{merchant_id}/orders/{order_ref}")
async def order_page(request: Request, merchant_id: str, order_ref: str) -> Response:
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        merchant, order = await _order(request, merchant_id, order_ref)
    except KassaError as exc:
        if wants_json:
            return kassa_error_response(exc)
        return _page(request, "message.html", exc.status, title="Order not found", text=exc.message)
    last = await runtime_of(request).submissions.last_outcome(order["id"])
    if wants_json:
        return _json(ka_order(order, merchant_id, last, private=False), headers={"Cache-Control": "no-store"})
    view = ka_order(order, merchant_id, last, private=False)
    grin = Money(view["grin_amount"], "GRIN")
    return _page(
        request,
        "knockturn_order.html",
        200,
        merchant=merchant.name,
        order=view,
        price=Money(order["amount"], order["currency"]).display(),
        grins=grin.display(),
        grin_number=grin.display().removesuffix(" GRIN"),
        qr=qr_svg(view["payment_url"]),
        final=view["status"] in FINAL,
    )


def _page(request: Request, template: str, status: int, **context: Any) -> Response:
    return render_page(request, _env, template, status, **context)


@router.post("/merchants/{merchant_id}/orders/{order_ref}")
async def pay_order(request: Request, merchant_id: str, order_ref: str) -> Response:
    """The slate in, the merchant wallet's signed slate out."""
    try:
        merchant, order = await _order(request, merchant_id, order_ref)
        slate = await _body_json(request)
        outcome = await runtime_of(request).submissions.submit(merchant.pk, order["id"], slate)
    except KassaError as exc:
        return kassa_error_response(exc)
    return _json(outcome.answer)


@router.post("/merchants/{merchant_id}/orders/{order_ref}/v2/foreign")
async def foreign_api(request: Request, merchant_id: str, order_ref: str) -> Response:
    """The Grin wallet Foreign API (JSON-RPC 2.0) as the payer's wallet expects it."""
    try:
        call = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _json(rpc_error(None, PARSE_ERROR, "Parse error"))
    if not isinstance(call, dict) or not isinstance(call.get("method"), str):
        return _json(rpc_error(None, INVALID_REQUEST, "Invalid Request"))
    id = call.get("id")
    if not isinstance(id, str | int | None) or isinstance(id, bool):
        return _json(rpc_error(None, INVALID_REQUEST, "Invalid Request"))
    try:
        merchant, order = await _order(request, merchant_id, order_ref)
    except KassaError as exc:
        return _json(rpc_result(id, wallet_err(exc.message)), exc.status)
    method = call["method"]
    if method == "check_version":
        return _json(
            rpc_result(
                id,
                {
                    "Ok": {
                        "foreign_api_version": FOREIGN_API_VERSION,
                        "supported_slate_versions": SLATE_VERSIONS,
                    }
                },
            )
        )
    if method != "receive_tx":
        return _json(rpc_error(id, METHOD_NOT_FOUND, f"Method not found: {method[:60]}"))
    slate = receive_tx_slate(call.get("params"))
    if slate is None:
        return _json(
            rpc_error(id, INVALID_PARAMS, "Invalid params: receive_tx takes [slate, dest_acct_name, r_addr]")
        )
    try:
        outcome = await runtime_of(request).submissions.submit(merchant.pk, order["id"], slate)
    except PaymentRefused as exc:
        return _json(
            rpc_result(id, {"Err": exc.answer} if exc.answer is not None else wallet_err(exc.message))
        )
    except KassaError as exc:
        return _json(rpc_result(id, wallet_err(exc.message)), 502 if exc.status == 502 else 200)
    return _json(rpc_result(id, {"Ok": outcome.answer}))
