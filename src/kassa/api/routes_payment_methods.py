"""`/api/v1/payment-methods`: configure the merchant's rails (settings validated by the rail)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request, Response

from kassa.api.auth import merchant_pk, require, runtime_of
from kassa.api.routes_orders import ERRORS, json_response
from kassa.api.schemas import PaymentMethodList, PaymentMethodOut, RailCheckOut
from kassa.services.api_keys import Principal

router = APIRouter(prefix="/payment-methods", tags=["payment methods"])
Rail = Annotated[str, Path(max_length=40, description="The rail's name, e.g. monero or test.")]


@router.get("", response_model=PaymentMethodList, responses=ERRORS, summary="Your rails (secrets masked)")
async def list_methods(
    request: Request, principal: Principal = Depends(require("merchant:read"))
) -> Response:
    data = await runtime_of(request).payment_methods.for_merchant(merchant_pk(principal))
    return json_response({"object": "list", "data": data, "has_more": False})


@router.put(
    "/{rail}",
    response_model=PaymentMethodOut,
    responses=ERRORS,
    summary="Configure and enable a rail; omitted secrets keep their stored value",
)
async def configure(
    request: Request,
    rail: Rail,
    settings: Annotated[dict[str, Any], Body(max_length=50)],
    principal: Principal = Depends(require("merchant:write")),
) -> Response:
    view = await runtime_of(request).payment_methods.configure(merchant_pk(principal), rail, settings)
    return json_response(view)


@router.delete("/{rail}", response_model=PaymentMethodOut, responses=ERRORS, summary="Disable a rail")
async def disable(
    request: Request, rail: Rail, principal: Principal = Depends(require("merchant:write"))
) -> Response:
    return json_response(await runtime_of(request).payment_methods.disable(merchant_pk(principal), rail))


@router.post(
    "/{rail}/check",
    response_model=RailCheckOut,
    responses=ERRORS,
    summary="Is the rail reachable and healthy?",
)
async def check(
    request: Request, rail: Rail, principal: Principal = Depends(require("merchant:read"))
) -> Response:
    health = await runtime_of(request).rail_check(merchant_pk(principal), rail)
    return json_response({"object": "rail_check", "rail": rail, "ok": health.ok, "details": health.details})


@router.post(
    "/{rail}/notify",
    status_code=202,
    responses=ERRORS,
    summary="Wake the rail's watcher now (e.g. from monero-wallet-rpc --tx-notify)",
)
async def notify(
    request: Request, rail: Rail, principal: Principal = Depends(require("rails:notify"))
) -> Response:
    await runtime_of(request).wake_watcher(merchant_pk(principal), rail)
    return json_response({"object": "rail_notification", "rail": rail, "accepted": True}, 202)
