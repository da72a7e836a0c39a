"""`/api/v1/test/*`: drive the test rail (pretend payments and blocks) for your own orders."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from kassa.api.auth import merchant_pk, require, runtime_of
from kassa.api.routes_orders import ERRORS, json_response
from kassa.api.schemas import TestBlocksCreate, TestBlocksOut, TestPaymentCreate, TestPaymentOut
from kassa.services.api_keys import Principal

router = APIRouter(prefix="/test", tags=["test rail"])


@router.post(
    "/payments",
    status_code=201,
    response_model=TestPaymentOut,
    responses=ERRORS,
    summary="Send a pretend payment to an order",
)
async def create_test_payment(
    request: Request, body: TestPaymentCreate, principal: Principal = Depends(require("orders:write"))
) -> Response:
    result = await runtime_of(request).test_payments.pay(merchant_pk(principal), body.order, body.amount)
    return json_response(result, 201)


@router.post(
    "/blocks",
    response_model=TestBlocksOut,
    responses=ERRORS,
    summary="Add confirmations to every pending test payment",
)
async def mine_test_blocks(
    request: Request, body: TestBlocksCreate, principal: Principal = Depends(require("orders:write"))
) -> Response:
    return json_response(await runtime_of(request).test_payments.mine(merchant_pk(principal), body.count))


@router.post(
    "/payments/{payment}/reject",
    response_model=TestPaymentOut,
    responses=ERRORS,
    summary="Drop a pending test payment, as if it left the pool or was reorged out",
)
async def reject_test_payment(
    request: Request, payment: str, principal: Principal = Depends(require("orders:write"))
) -> Response:
    return json_response(await runtime_of(request).test_payments.reject(merchant_pk(principal), payment))
