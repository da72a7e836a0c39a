"""`/api/v1/orders`: create, read (with long polling), list, cancel, choose a method."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response

from kassa.api.auth import merchant_pk, require, runtime_of
from kassa.api.longpoll import wait_for_change
from kassa.api.schemas import ErrorResponse, MethodChoice, OrderCreate, OrderList, OrderOut
from kassa.runtime import Runtime
from kassa.services.api_keys import Principal
from kassa.services.orders import CartLine, NewOrder
from kassa.services.views import etag

router = APIRouter(tags=["orders"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 415, 422)
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


@router.post(
    "/orders",
    status_code=201,
    response_model=None,
    responses={
        201: {"model": OrderOut, "description": "Created"},
        200: {"model": OrderOut, "description": "An order with this order_id and body already exists"},
        **ERRORS,
    },
    summary="Create an order",
)
async def create_order(
    request: Request,
    body: Annotated[OrderCreate, Body()],
    principal: Principal = Depends(require("orders:write")),
) -> Response:
    # Requests this would answer with an order usually arrive through api/fast_create.py instead,
    # which calls the same function; this route defines the endpoint and answers every error.
    return await create_order_response(runtime_of(request), principal, body)


async def create_order_response(runtime: Runtime, principal: Principal, body: OrderCreate) -> Response:
    new = NewOrder(
        currency=body.currency,
        amount=body.amount,
        cart=[CartLine(line.name, line.price, line.quantity, line.image) for line in body.cart]
        if body.cart is not None
        else None,
        merchant_order_id=body.order_id,
        description=body.description,
        email=body.email,
        confirmations=body.confirmations,
        expires_in=body.expires_in,
        success_url=body.success_url,
        cancel_url=body.cancel_url,
        callback_url=body.callback_url,
        fulfillment_url=body.fulfillment_url,
        session_id=body.session_id,
        payment_methods=body.payment_methods,
        metadata=body.metadata,
        locale=body.locale,
        auto_redirect=body.auto_redirect,
    )
    result = await runtime.orders.create(merchant_pk(principal), new)
    order = result.order
    headers = {"ETag": etag(order["id"], order["version"]), "Location": f"/api/v1/orders/{order['id']}"}
    status = 201 if result.created else 200
    if result.body is not None:
        return Response(result.body, status_code=status, media_type="application/json", headers=headers)
    return json_response(order, status, headers)


@router.get(
    "/orders/{order}",
    response_model=None,
    responses={200: {"model": OrderOut}, 304: {"description": "Not modified (If-None-Match)"}, **ERRORS},
    summary="Read an order, optionally waiting for it to change",
)
async def get_order(
    request: Request,
    order: str,
    timeout_ms: Annotated[int, Query(ge=0, le=600_000, description="Wait up to this long for a change.")] = 0,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
    principal: Principal = Depends(require("orders:read")),
) -> Response:
    runtime = runtime_of(request)
    pk = merchant_pk(principal)
    view = await runtime.orders.get(pk, order)
    wait_ms = min(timeout_ms, runtime.settings.long_poll_max_ms)
    current = etag(view["id"], view["version"])
    if wait_ms > 0 and (if_none_match is None or if_none_match == current):
        with runtime.hub.subscription(view["id"], view["version"]) as changed:
            # Re-read after subscribing: a change between the first read and now is not lost.
            fresh = await runtime.orders.get(pk, view["id"])
            if fresh["version"] == view["version"] and await wait_for_change(
                request, changed, wait_ms / 1000
            ):
                fresh = await runtime.orders.get(pk, view["id"])
            view = fresh
        current = etag(view["id"], view["version"])
    if if_none_match is not None and if_none_match == current:
        return Response(status_code=304, headers={"ETag": current})
    return json_response(view, headers={"ETag": current})


@router.get("/orders", response_model=OrderList, responses=ERRORS, summary="List orders, newest first")
async def list_orders(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: Annotated[str | None, Query(max_length=200)] = None,
    status: Literal["open", "processing", "paid", "expired", "canceled", "invalid"] | None = None,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
    order_id: Annotated[str | None, Query(max_length=200)] = None,
    principal: Principal = Depends(require("orders:read")),
) -> Response:
    data, has_more = await runtime_of(request).orders.page(
        merchant_pk(principal),
        limit=limit,
        starting_after=starting_after,
        status=status,
        created_gte=_aware(created_gte),
        created_lt=_aware(created_lt),
        merchant_order_id=order_id,
    )
    return json_response({"object": "list", "data": data, "has_more": has_more})


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@router.post(
    "/orders/{order}/cancel",
    response_model=OrderOut,
    responses=ERRORS,
    summary="Cancel an open order",
)
async def cancel_order(
    request: Request, order: str, principal: Principal = Depends(require("orders:write"))
) -> Response:
    view = await runtime_of(request).orders.cancel(merchant_pk(principal), order)
    return json_response(view)


@router.post(
    "/orders/{order}/method",
    response_model=OrderOut,
    responses=ERRORS,
    summary="Choose the payment method (and its destination) for an order",
)
async def choose_method(
    request: Request,
    order: str,
    body: MethodChoice,
    principal: Principal = Depends(require("orders:write")),
) -> Response:
    view = await runtime_of(request).orders.choose_method(merchant_pk(principal), order, body.method)
    return json_response(view)
