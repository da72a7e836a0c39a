"""Merchants: managed by the admin credential; each merchant reads and tunes its own settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kassa.api.auth import require, runtime_of
from kassa.api.routes_orders import ERRORS, json_response
from kassa.api.schemas import (
    ApiKeyCreate,
    ApiKeyList,
    ApiKeyOut,
    MerchantCreate,
    MerchantCreated,
    MerchantList,
    MerchantOut,
    MerchantSettings,
    MerchantUpdate,
    UserCreate,
    UserList,
    UserOut,
    UserUpdate,
)
from kassa.services.api_keys import Principal

router = APIRouter(tags=["merchants"])


def _settings(body: MerchantSettings) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True, exclude={"rails"})


@router.post(
    "/merchants",
    status_code=201,
    response_model=MerchantCreated,
    responses=ERRORS,
    summary="Create a merchant and its first API key (admin)",
)
async def create_merchant(
    request: Request, body: MerchantCreate, _admin: Principal = Depends(require("admin"))
) -> Response:
    runtime = runtime_of(request)
    settings = _settings(body)
    name = settings.pop("name")
    merchant = await runtime.merchants.create(name, **settings)
    key = await runtime.keys.create(merchant.id)
    return json_response({"merchant": merchant.public(), "api_key": key.public()}, 201)


@router.get("/merchants", response_model=MerchantList, responses=ERRORS, summary="List merchants (admin)")
async def list_merchants(request: Request, _admin: Principal = Depends(require("admin"))) -> Response:
    merchants = await runtime_of(request).merchants.all()
    return json_response({"object": "list", "data": [m.public() for m in merchants], "has_more": False})


@router.get(
    "/merchants/{merchant}", response_model=MerchantOut, responses=ERRORS, summary="Read a merchant (admin)"
)
async def get_merchant(
    request: Request, merchant: str, _admin: Principal = Depends(require("admin"))
) -> Response:
    return json_response((await runtime_of(request).merchants.get(merchant)).public())


@router.patch(
    "/merchants/{merchant}",
    response_model=MerchantOut,
    responses=ERRORS,
    summary="Change a merchant's settings or turn rails on and off (admin)",
)
async def update_merchant(
    request: Request, merchant: str, body: MerchantUpdate, _admin: Principal = Depends(require("admin"))
) -> Response:
    updated = await runtime_of(request).merchants.update(merchant, _settings(body), body.rails)
    return json_response(updated.public())


@router.post(
    "/merchants/{merchant}/keys",
    status_code=201,
    response_model=ApiKeyOut,
    responses=ERRORS,
    summary="Create an API key for a merchant (admin)",
)
async def create_key(
    request: Request, merchant: str, body: ApiKeyCreate, _admin: Principal = Depends(require("admin"))
) -> Response:
    key = await runtime_of(request).keys.create(merchant, body.scopes, body.name)
    return json_response(key.public(), 201)


@router.get(
    "/merchants/{merchant}/keys",
    response_model=ApiKeyList,
    responses=ERRORS,
    summary="List a merchant's API keys (admin)",
)
async def list_keys(
    request: Request, merchant: str, _admin: Principal = Depends(require("admin"))
) -> Response:
    runtime = runtime_of(request)
    await runtime.merchants.get(merchant)  # 404 for an unknown merchant
    keys = await runtime.keys.for_merchant(merchant)
    return json_response({"object": "list", "data": keys, "has_more": False})


@router.delete(
    "/merchants/{merchant}/keys/{key}", status_code=204, responses=ERRORS, summary="Revoke an API key (admin)"
)
async def revoke_key(
    request: Request, merchant: str, key: str, _admin: Principal = Depends(require("admin"))
) -> Response:
    await runtime_of(request).keys.revoke(key, merchant)
    return Response(status_code=204)


@router.get("/merchant", response_model=MerchantOut, responses=ERRORS, summary="Your merchant account")
async def me(request: Request, principal: Principal = Depends(require("merchant:read"))) -> Response:
    assert principal.merchant_id is not None
    return json_response((await runtime_of(request).merchants.get(principal.merchant_id)).public())


@router.patch(
    "/merchant",
    response_model=MerchantOut,
    responses=ERRORS,
    summary="Change your settings or turn rails on and off",
)
async def update_me(
    request: Request, body: MerchantUpdate, principal: Principal = Depends(require("merchant:write"))
) -> Response:
    assert principal.merchant_id is not None
    updated = await runtime_of(request).merchants.update(principal.merchant_id, _settings(body), body.rails)
    return json_response(updated.public())


@router.post(
    "/merchants/{merchant}/users",
    status_code=201,
    response_model=UserOut,
    responses=ERRORS,
    summary="Create a dashboard user for a merchant (admin)",
)
async def create_user(
    request: Request, merchant: str, body: UserCreate, _admin: Principal = Depends(require("admin"))
) -> Response:
    user = await runtime_of(request).users.create(merchant, body.email, body.password, body.name)
    return json_response(user, 201)


@router.get(
    "/merchants/{merchant}/users",
    response_model=UserList,
    responses=ERRORS,
    summary="List a merchant's dashboard users (admin)",
)
async def list_users(
    request: Request, merchant: str, _admin: Principal = Depends(require("admin"))
) -> Response:
    runtime = runtime_of(request)
    await runtime.merchants.get(merchant)  # 404 for an unknown merchant
    return json_response({"object": "list", "data": await runtime.users.list(merchant), "has_more": False})


@router.patch(
    "/users/{user}",
    response_model=UserOut,
    responses=ERRORS,
    summary="Disable or re-enable a dashboard user (admin)",
)
async def update_user(
    request: Request, user: str, body: UserUpdate, _admin: Principal = Depends(require("admin"))
) -> Response:
    return json_response(await runtime_of(request).users.set_disabled(user, body.disabled))
