"""`POST /gateways/{rail}/notify/{merchant_id}`: a card gateway's notification (e.g. NewebPay's
NotifyURL) for orders paid through Kassa's own checkout page.

Public and form-encoded, as gateways send them: the rail verifies the notification before anything
is read (`Rail.notified`) and the core matches it to the stored payment (services/gateways.py).
A taken notification (or a repeat of one) answers `200 OK`; anything refused answers Kassa's error
shape with 400 or 404, and changes nothing.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from kassa.api.auth import runtime_of
from kassa.api.errors import kassa_error_response
from kassa.errors import InvalidRequest, KassaError, NotFound

router = APIRouter(include_in_schema=False)

MAX_FIELDS = 50


@router.post("/gateways/{rail}/notify/{merchant_id}")
async def gateway_notify(request: Request, rail: str, merchant_id: str) -> Response:
    runtime = runtime_of(request)
    try:
        try:
            merchant = await runtime.merchants.get(merchant_id[:40])
        except NotFound:
            raise NotFound("no such merchant", param="merchant_id") from None
        try:
            pairs = parse_qsl((await request.body()).decode("utf-8"), max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError):
            raise InvalidRequest(
                "the notification must be a form (application/x-www-form-urlencoded)"
            ) from None
        fields = dict(pairs)
        if len(fields) != len(pairs) or any("\x00" in k or "\x00" in v for k, v in pairs):
            raise InvalidRequest("the notification repeats a field or holds NUL characters")
        await runtime.gateways.receive(merchant.pk, rail[:40], fields)
    except KassaError as exc:
        return kassa_error_response(exc)
    return Response(b"OK", 200, media_type="text/plain")
