"""Refunds: `/api/v1/orders/{id}/refunds` and `/api/v1/refunds/{id}` (docs/refunds.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from kassa.api.auth import merchant_pk, require, runtime_of
from kassa.api.routes_orders import ERRORS, json_response
from kassa.api.schemas import RefundCreate, RefundList, RefundOut, RefundSent
from kassa.services.api_keys import Principal

router = APIRouter(tags=["refunds"])

OrderRef = Annotated[
    str, Path(min_length=1, max_length=200, description="the order's Kassa id or your order_id")
]
RefundId = Annotated[str, Path(min_length=1, max_length=40)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.post(
    "/orders/{order}/refunds",
    status_code=201,
    response_model=RefundOut,
    responses=ERRORS,
    summary="Refund part or all of what an order received",
)
async def create_refund(
    request: Request,
    order: OrderRef,
    body: RefundCreate,
    principal: Principal = Depends(require("orders:write")),
) -> Response:
    refund = await runtime_of(request).refunds.create(
        merchant_pk(principal),
        order,
        body.amount,
        currency=body.currency,
        reason=body.reason,
        destination=body.destination,
    )
    return json_response(refund, 201)


@router.get(
    "/orders/{order}/refunds", response_model=RefundList, responses=ERRORS, summary="An order's refunds"
)
async def list_refunds(
    request: Request,
    order: OrderRef,
    limit: Limit = 10,
    starting_after: Cursor = None,
    principal: Principal = Depends(require("orders:read")),
) -> Response:
    data, more = await runtime_of(request).refunds.for_order(
        merchant_pk(principal), order, limit, starting_after
    )
    return json_response({"object": "list", "data": data, "has_more": more})


@router.get("/refunds/{refund}", response_model=RefundOut, responses=ERRORS, summary="A refund")
async def get_refund(
    request: Request, refund: RefundId, principal: Principal = Depends(require("orders:read"))
) -> Response:
    return json_response(await runtime_of(request).refunds.get(merchant_pk(principal), refund))


@router.post(
    "/refunds/{refund}/sent",
    response_model=RefundOut,
    responses=ERRORS,
    summary="Mark a refund sent by hand, with its transaction's id (rails that cannot send)",
)
async def mark_refund_sent(
    request: Request,
    refund: RefundId,
    body: RefundSent,
    principal: Principal = Depends(require("orders:write")),
) -> Response:
    return json_response(
        await runtime_of(request).refunds.mark_sent(merchant_pk(principal), refund, body.reference)
    )


@router.post(
    "/refunds/{refund}/cancel",
    response_model=RefundOut,
    responses=ERRORS,
    summary="Cancel a refund not sent yet",
)
async def cancel_refund(
    request: Request, refund: RefundId, principal: Principal = Depends(require("orders:write"))
) -> Response:
    return json_response(await runtime_of(request).refunds.cancel(merchant_pk(principal), refund))


@router.post(
    "/refunds/{refund}/approve",
    response_model=RefundOut,
    responses=ERRORS,
    summary="Let a refund Kassa made by rule go (sent at once when the rail can)",
)
async def approve_refund(
    request: Request, refund: RefundId, principal: Principal = Depends(require("orders:write"))
) -> Response:
    return json_response(await runtime_of(request).refunds.approve(merchant_pk(principal), refund))
