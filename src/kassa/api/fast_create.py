"""`POST /api/v1/orders` for the common case, without FastAPI's per-request machinery.

Order creation is the endpoint merchants' backends hit hardest, and FastAPI's dependency solving,
routing and request wrapping cost several times what creating the order does (docs/benchmarks.md).
This innermost middleware answers the requests that the route in routes_orders.py would answer with
an order — a JSON object that validates as `OrderCreate`, and a bearer key — by calling the same
functions the route calls (`authorize`, `create_order_response`, and for a refused key or a refused
order `kassa_error_response`). Everything else (malformed JSON, invalid fields, no bearer key) goes
on to the route untouched, so every validation error is the route's own answer. The outer
middleware (request log, body guard, idempotency) runs for both paths alike.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kassa.api.auth import authorize
from kassa.api.errors import kassa_error_response
from kassa.api.middleware import ROUTE_KEY, header, replay_receive
from kassa.api.routes_orders import create_order_response
from kassa.api.schemas import OrderCreate
from kassa.errors import KassaError
from kassa.runtime import Runtime

PATH = "/api/v1/orders"


class FastOrderCreate:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        credentials = _bearer(header(scope, b"authorization"))
        data = _json_object(scope, body) if credentials else None
        order = _valid_order(data) if data is not None else None
        if order is None:
            await self.app(scope, replay_receive(body), send)
            return
        scope[ROUTE_KEY] = PATH  # for the metrics: answered here, never routed
        try:
            principal = await authorize(self.runtime, credentials, "orders:write")
            response = await create_order_response(self.runtime, principal, order)
        except KassaError as exc:
            response = kassa_error_response(exc)
        await response(scope, replay_receive(b""), send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _bearer(value: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>`, read as fastapi.security.HTTPBearer reads it."""
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def _valid_order(data: dict[str, Any]) -> OrderCreate | None:
    try:
        return OrderCreate.model_validate(data)  # python mode, as FastAPI validates a body
    except ValidationError:
        return None


def _json_object(scope: Scope, body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object when its content type is plainly JSON; None leaves it to the route."""
    content_type = (header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" or not body:
        return None
    try:
        data = json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        return None
    return data if isinstance(data, dict) else None
