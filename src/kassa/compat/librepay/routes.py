"""LibrePay's routes, at exactly the seed's paths (shared/seeds/librepay-invoice-protocol.md).

- `POST /invoice/`: the shop creates an invoice from its cart (API key); every enabled coin is priced.
- `POST /invoice/{selector}/setmethod`: the customer picks a coin and gets its receive address.
- `GET  /invoice/{selector}`: the invoice, with its address and status.
- `GET  /invoice/{selector}/events`: its status changes, as server-sent events.

The selector is Kassa's order id (the capability: 120 random bits). Errors are Kassa's one shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from kassa.api.auth import authorize, runtime_of
from kassa.api.errors import kassa_error_response
from kassa.compat.librepay.wire import LPInvoiceCreate, created, dumps, invoice, new_order, parse_body
from kassa.domain.orders import TERMINAL, OrderStatus
from kassa.errors import InvalidRequest, KassaError, NotFound
from kassa.runtime import Runtime

router = APIRouter(include_in_schema=False)

KEEPALIVE_SECONDS = 15.0
STREAM_MAX_SECONDS = 3600.0  # the client reconnects (EventSource does) after this


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status, media_type="application/json", headers={"Cache-Control": "no-store"})


def _bad_body(exc: ValidationError) -> InvalidRequest:
    err = exc.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".") or "body"
    if err["type"] == "model_type":
        return InvalidRequest("the request body must be a JSON object", code="body_invalid")
    return InvalidRequest(f"{where}: {err['msg'].removeprefix('Value error, ')}", param=where)


@router.post("/invoice/")
@router.post("/invoice")
async def create_invoice(request: Request) -> Response:
    runtime = runtime_of(request)
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    try:
        principal = await authorize(
            runtime, key.strip() if scheme.lower() == "bearer" else None, "orders:write"
        )
        try:
            body = LPInvoiceCreate.model_validate(parse_body(await request.body()))
        except ValidationError as exc:
            raise _bad_body(exc) from None
        assert principal.merchant_pk is not None
        result = await runtime.orders.create(principal.merchant_pk, new_order(body))
    except KassaError as exc:
        return kassa_error_response(exc)
    return _json(created(result.order))


async def _order(runtime: Runtime, selector: str) -> dict[str, Any]:
    if not selector.startswith("ord_") or len(selector) > 64:
        raise NotFound(f"no invoice {selector!r}", param="selector")
    try:
        order, _merchant = await runtime.orders.get_public(selector)
    except NotFound:
        raise NotFound(f"no invoice {selector!r}", param="selector") from None
    return order


@router.post("/invoice/{selector}/setmethod")
async def set_method(request: Request, selector: str) -> Response:
    runtime = runtime_of(request)
    try:
        await _order(runtime, selector)
        body = parse_body(await request.body())
        method = body.get("method") if isinstance(body, dict) else None
        if not isinstance(method, str) or not 1 <= len(method) <= 40:
            raise InvalidRequest('method: give the coin to pay with, e.g. {"method": "BTC"}', param="method")
        order = await runtime.orders.choose_method(None, selector, method)
    except KassaError as exc:
        return kassa_error_response(exc)
    return _json({"receiveAddress": invoice(order)["receiveAddress"]})


@router.get("/invoice/{selector}")
async def get_invoice(request: Request, selector: str) -> Response:
    try:
        order = await _order(runtime_of(request), selector)
    except KassaError as exc:
        return kassa_error_response(exc)
    return _json(invoice(order))


@router.get("/invoice/{selector}/events")
async def invoice_events(request: Request, selector: str) -> Response:
    """`event: status` with the invoice at once and after every change; a comment every 15 s keeps
    proxies from closing the stream. It ends when the invoice can change no more."""
    runtime = runtime_of(request)
    try:
        first = await _order(runtime, selector)
    except KassaError as exc:
        return kassa_error_response(exc)
    return StreamingResponse(
        _stream(runtime, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(runtime: Runtime, order: dict[str, Any]) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_MAX_SECONDS
    yield _event(order)
    while OrderStatus(order["status"]) not in TERMINAL and loop.time() < ends:
        with runtime.hub.subscription(order["id"], order["version"]) as changed:
            fresh = await _order(runtime, order["id"])  # a change between two reads is not missed
            if fresh["version"] == order["version"]:
                try:
                    await asyncio.wait_for(asyncio.shield(changed), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                fresh = await _order(runtime, order["id"])
        if fresh["version"] != order["version"]:
            order = fresh
            yield _event(order)


def _event(order: dict[str, Any]) -> str:
    return f"event: status\nid: {order['version']}\ndata: {dumps(invoice(order))}\n\n"
