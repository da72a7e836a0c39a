"""Payouts: `/api/v1/payouts` (docs/payouts.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from kassa.api.auth import merchant_pk, require, runtime_of
from kassa.api.routes_orders import ERRORS, json_response
from kassa.api.schemas import PayoutCreate, PayoutList, PayoutOut, PayoutSigned
from kassa.services.api_keys import Principal

router = APIRouter(tags=["payouts"])

PayoutId = Annotated[str, Path(min_length=1, max_length=40)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]
Status = Annotated[str | None, Query(max_length=40)]


@router.post(
    "/payouts",
    status_code=201,
    response_model=PayoutOut,
    responses=ERRORS,
    summary="Pay out the balance (or part of it) to your wallet, or build the transaction to sign",
)
async def create_payout(
    request: Request, body: PayoutCreate, principal: Principal = Depends(require("payouts:write"))
) -> Response:
    payout = await runtime_of(request).payouts.create(
        merchant_pk(principal),
        body.rail,
        currency=body.currency,
        amount=body.amount,
        destination=body.destination,
        unsigned=body.unsigned,
    )
    return json_response(payout, 201)


@router.get("/payouts", response_model=PayoutList, responses=ERRORS, summary="Your payouts, newest first")
async def list_payouts(
    request: Request,
    limit: Limit = 10,
    starting_after: Cursor = None,
    status: Status = None,
    principal: Principal = Depends(require("merchant:read")),
) -> Response:
    data, more = await runtime_of(request).payouts.page(merchant_pk(principal), limit, starting_after, status)
    return json_response({"object": "list", "data": data, "has_more": more})


@router.get("/payouts/{payout}", response_model=PayoutOut, responses=ERRORS, summary="A payout")
async def get_payout(
    request: Request, payout: PayoutId, principal: Principal = Depends(require("merchant:read"))
) -> Response:
    return json_response(await runtime_of(request).payouts.get(merchant_pk(principal), payout))


@router.post(
    "/payouts/{payout}/signed",
    response_model=PayoutOut,
    responses=ERRORS,
    summary="Post the payout's transaction signed by your wallet: Kassa broadcasts it",
)
async def submit_signed_payout(
    request: Request,
    payout: PayoutId,
    body: PayoutSigned,
    principal: Principal = Depends(require("payouts:write")),
) -> Response:
    return json_response(
        await runtime_of(request).payouts.submit_signed(merchant_pk(principal), payout, body.signed_tx)
    )


@router.post(
    "/payouts/{payout}/cancel",
    response_model=PayoutOut,
    responses=ERRORS,
    summary="Cancel a payout that waits for its signature (its amount returns to the balance)",
)
async def cancel_payout(
    request: Request, payout: PayoutId, principal: Principal = Depends(require("payouts:write"))
) -> Response:
    return json_response(await runtime_of(request).payouts.cancel(merchant_pk(principal), payout))
