"""`/api/v1/events` and `/api/v1/webhook-endpoints`: the event log, endpoints and their delivery logs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from kassa.api.auth import merchant_pk, require, runtime_of
from kassa.api.routes_orders import ERRORS, json_response
from kassa.api.schemas import (
    CallbackSecretOut,
    DeliveryList,
    EventList,
    EventOut,
    Redelivery,
    SecretRotation,
    WebhookEndpointCreate,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookEndpointUpdate,
)
from kassa.services.api_keys import Principal
from kassa.services.webhooks import EndpointChanges

router = APIRouter(tags=["events and webhooks"])
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get("/events", response_model=EventList, responses=ERRORS, summary="List events, newest first")
async def list_events(
    request: Request,
    limit: Limit = 10,
    starting_after: Cursor = None,
    type: Annotated[str | None, Query(max_length=60)] = None,
    object: Annotated[
        str | None, Query(max_length=40, description="An object id, e.g. ord_… or pay_…")
    ] = None,
    order: Annotated[str | None, Query(max_length=40)] = None,
    principal: Principal = Depends(require("events:read")),
) -> Response:
    data, more = await runtime_of(request).webhooks.list_events(
        merchant_pk(principal),
        limit=limit,
        starting_after=starting_after,
        type=type,
        object_id=object,
        order_id=order,
    )
    return json_response({"object": "list", "data": data, "has_more": more})


@router.get("/events/{event}", response_model=EventOut, responses=ERRORS, summary="Read an event")
async def get_event(
    request: Request, event: str, principal: Principal = Depends(require("events:read"))
) -> Response:
    return json_response(await runtime_of(request).webhooks.get_event(merchant_pk(principal), event))


@router.post(
    "/events/{event}/redeliver",
    status_code=202,
    response_model=DeliveryList,
    responses=ERRORS,
    summary="Send an event again (same webhook-id)",
)
async def redeliver(
    request: Request,
    event: str,
    body: Redelivery | None = None,
    principal: Principal = Depends(require("webhooks:write")),
) -> Response:
    created = await runtime_of(request).webhooks.redeliver(
        merchant_pk(principal), event, body.endpoint if body else None
    )
    return json_response({"object": "list", "data": created, "has_more": False}, 202)


@router.post(
    "/webhook-endpoints",
    status_code=201,
    response_model=WebhookEndpointOut,
    responses=ERRORS,
    summary="Register a webhook endpoint (its secret is shown once)",
)
async def create_endpoint(
    request: Request, body: WebhookEndpointCreate, principal: Principal = Depends(require("webhooks:write"))
) -> Response:
    view = await runtime_of(request).webhooks.create_endpoint(
        merchant_pk(principal), body.url, body.event_types, body.description, body.enabled
    )
    return json_response(view, 201)


@router.get(
    "/webhook-endpoints",
    response_model=WebhookEndpointList,
    responses=ERRORS,
    summary="List webhook endpoints",
)
async def list_endpoints(
    request: Request, principal: Principal = Depends(require("webhooks:read"))
) -> Response:
    data = await runtime_of(request).webhooks.list_endpoints(merchant_pk(principal))
    return json_response({"object": "list", "data": data, "has_more": False})


@router.get(
    "/webhook-endpoints/{endpoint}",
    response_model=WebhookEndpointOut,
    responses=ERRORS,
    summary="Read a webhook endpoint",
)
async def get_endpoint(
    request: Request, endpoint: str, principal: Principal = Depends(require("webhooks:read"))
) -> Response:
    return json_response(await runtime_of(request).webhooks.get_endpoint(merchant_pk(principal), endpoint))


@router.patch(
    "/webhook-endpoints/{endpoint}",
    response_model=WebhookEndpointOut,
    responses=ERRORS,
    summary="Change a webhook endpoint; enabling it again clears its failure record",
)
async def update_endpoint(
    request: Request,
    endpoint: str,
    body: WebhookEndpointUpdate,
    principal: Principal = Depends(require("webhooks:write")),
) -> Response:
    changes = EndpointChanges(body.url, body.description, body.event_types, body.enabled)
    return json_response(
        await runtime_of(request).webhooks.update_endpoint(merchant_pk(principal), endpoint, changes)
    )


@router.delete(
    "/webhook-endpoints/{endpoint}",
    status_code=204,
    responses=ERRORS,
    summary="Delete a webhook endpoint and its delivery log",
)
async def delete_endpoint(
    request: Request, endpoint: str, principal: Principal = Depends(require("webhooks:write"))
) -> Response:
    await runtime_of(request).webhooks.delete_endpoint(merchant_pk(principal), endpoint)
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint}/rotate-secret",
    response_model=WebhookEndpointOut,
    responses=ERRORS,
    summary="New signing secret; the old one keeps signing during the overlap",
)
async def rotate_secret(
    request: Request,
    endpoint: str,
    body: SecretRotation | None = None,
    principal: Principal = Depends(require("webhooks:write")),
) -> Response:
    overlap = body.overlap_seconds if body else SecretRotation().overlap_seconds
    return json_response(
        await runtime_of(request).webhooks.rotate_secret(merchant_pk(principal), endpoint, overlap)
    )


@router.get(
    "/webhook-endpoints/{endpoint}/deliveries",
    response_model=DeliveryList,
    responses=ERRORS,
    summary="Every delivery to this endpoint, with each attempt",
)
async def list_deliveries(
    request: Request,
    endpoint: str,
    limit: Limit = 10,
    starting_after: Cursor = None,
    principal: Principal = Depends(require("webhooks:read")),
) -> Response:
    data, more = await runtime_of(request).webhooks.deliveries(
        merchant_pk(principal), endpoint, limit=limit, starting_after=starting_after
    )
    return json_response({"object": "list", "data": data, "has_more": more})


@router.post(
    "/merchant/callback-secret",
    response_model=CallbackSecretOut,
    responses=ERRORS,
    summary="New secret for signing callbacks (shown once; the old one stops at once)",
)
async def rotate_callback_secret(
    request: Request, principal: Principal = Depends(require("webhooks:write"))
) -> Response:
    secret = await runtime_of(request).webhooks.rotate_callback_secret(merchant_pk(principal))
    return json_response({"object": "callback_secret", "secret": secret})
