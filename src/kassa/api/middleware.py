"""Pure ASGI middleware for the API: request logs, body limits and content types, idempotency."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from datetime import timedelta

from fastapi import routing as fastapi_routing
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kassa import logs
from kassa.api.errors import error_bytes
from kassa.db.tables import idempotency_keys
from kassa.metrics import Metrics
from kassa.runtime import Runtime

log = logging.getLogger("kassa.access")

ROUTE_KEY = "kassa.route"
"""Scope key naming the route template of a request answered before routing (fast paths, refusals)."""
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

_GUARDED_PREFIXES = ("/api/",)
_JSON_TYPES = ("application/json",)
# BTCPay's Greenfield paths (compat/greenfield) under /api/v1: refused in Greenfield's own shape,
# and their bodies read as JSON whatever their Content-Type, as BTCPay's clients send them.
GREENFIELD_PREFIXES = ("/api/v1/stores", "/api/v1/invoices", "/api/v1/server/", "/api/v1/api-keys/")


def _refusal(scope: Scope, status: int, message: str, code: str) -> tuple[int, bytes]:
    if scope["path"].startswith(GREENFIELD_PREFIXES):
        if status == 400:
            return 422, json.dumps([{"path": "", "message": message}]).encode()
        return status, json.dumps({"code": code.replace("_", "-"), "message": message}).encode()
    return status, error_bytes(status, message, code=code)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def send_error(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


def replay_receive(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def route_template(scope: Scope) -> str:
    """The matched route's path template ("/api/v1/orders/{order_id}"), whatever its router's prefix.

    FastAPI 0.165 includes routers lazily: `scope["route"]` is the route as declared, without the
    prefixes it was included under, and the full template is only kept in FastAPI's per-request
    context (private; its absence is caught by tests/api/test_operations.py on upgrade). A route
    inside a Mount (the dashboard) is declared below the mount's path, which Starlette adds to
    `root_path` above the app's own (`app_root_path`)."""
    if ROUTE_KEY in scope:
        return str(scope[ROUTE_KEY])
    context = fastapi_routing._get_scope_effective_route_context(scope)
    path = getattr(context, "path", None) or getattr(scope.get("route"), "path", None)
    if not path:
        return "unmatched"
    mount = str(scope.get("root_path", ""))[len(scope["app_root_path"]) :] if "app_root_path" in scope else ""
    return mount + str(path)


class RequestLogMiddleware:
    """Outermost: gives every request an id (the client's `X-Request-Id`, if sane, or a new one),
    answered in `X-Request-Id` and stamped on every log line written while it runs; counts it in the
    metrics by route template; and, when enabled, logs one line for it. Never headers, bodies or query
    strings (they may hold secrets)."""

    def __init__(self, app: ASGIApp, enabled: bool = True, metrics: Metrics | None = None) -> None:
        self.app = app
        self.enabled = enabled
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = header(scope, b"x-request-id")
        request_id = given if given is not None and _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
        token = logs.request_id.set(request_id)
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - start
            route = route_template(scope)
            if self.metrics is not None:
                self.metrics.observe(scope["method"], route, status, seconds)
            if self.enabled:
                method, path, ms = scope["method"], scope["path"], round(seconds * 1000, 2)
                fields = {"event": "request", "method": method, "path": path, "route": route}
                fields.update(status=status, duration_ms=ms)
                log.info("%s %s %s %.2fms", method, path, status, ms, extra=fields)
            logs.request_id.reset(token)


_NUL_MESSAGE = "text must not contain NUL characters (\\u0000)"


def _has_nul(scope: Scope) -> bool:
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    if b"%00" in raw or b"\x00" in raw:
        return True
    if not scope["path"].startswith(_GUARDED_PREFIXES):  # other fronts check text in their own style
        return False
    query = scope.get("query_string", b"")
    return b"%00" in query or b"\x00" in query


class BodyGuardMiddleware:
    """413 for bodies over the limit (declared or streamed) on every path; on the API, 415 for non-JSON
    bodies and 400 for NUL characters in a body or query (PostgreSQL cannot store them in text); 400
    for NUL characters in any path."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            await send_error(send, *_refusal(scope, 400, _NUL_MESSAGE, "parameter_invalid"))
            return
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            await self.app(scope, receive, send)
            return
        _, too_big = _refusal(
            scope, 413, f"the request body is larger than {self.max_bytes} bytes", "body_too_large"
        )
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_error(send, 413, too_big, [(b"connection", b"close")])
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_error(send, 413, too_big, [(b"connection", b"close")])
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        guarded = scope["path"].startswith(_GUARDED_PREFIXES)  # other fronts check in their own style
        if guarded and b"\\u0000" in body:
            await send_error(send, *_refusal(scope, 400, _NUL_MESSAGE, "parameter_invalid"))
            return
        if body and guarded and not scope["path"].startswith(GREENFIELD_PREFIXES):
            ctype = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
            if ctype not in _JSON_TYPES and not ctype.endswith("+json"):
                await send_error(
                    send,
                    415,
                    error_bytes(
                        415,
                        "send the request body as JSON with 'Content-Type: application/json'",
                        code="unsupported_media_type",
                        param="Content-Type",
                    ),
                )
                return
        await self.app(scope, replay_receive(body), send)


class IdempotencyMiddleware:
    """`Idempotency-Key` on POST: the first answer is stored per credential for the TTL and replayed;
    the same key with a different request is a 422, and a key whose first request is still running
    is a 409. Server errors are not stored, so the client may retry them."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = None
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/api/v1/"):
            key = header(scope, b"idempotency-key")
        auth = header(scope, b"authorization") if key is not None else None
        if key is None or not auth:
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= 255 or not key.isprintable():
            await send_error(
                send,
                400,
                error_bytes(
                    400,
                    "Idempotency-Key must be 1 to 255 printable characters",
                    code="parameter_invalid",
                    param="Idempotency-Key",
                ),
            )
            return
        message = await receive()
        body = message.get("body", b"")
        credential = hashlib.sha256(auth.encode()).hexdigest()
        fingerprint = hashlib.sha256(
            b"\n".join(
                [scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body]
            )
        ).hexdigest()
        db, now = self.runtime.db, self.runtime.clock.now()
        ttl = timedelta(hours=self.runtime.settings.idempotency_ttl_hours)
        claimed = False
        for _ in range(2):
            try:
                async with db.transaction() as tx:
                    await tx.conn.execute(
                        insert(idempotency_keys).values(
                            scope=credential, key=key, request_hash=fingerprint, created_at=now
                        )
                    )
                claimed = True
                break
            except IntegrityError:
                async with db.read() as conn:
                    row = (
                        await conn.execute(
                            select(idempotency_keys).where(
                                idempotency_keys.c.scope == credential, idempotency_keys.c.key == key
                            )
                        )
                    ).first()
                if row is None:
                    continue
                if row.created_at < now - ttl:
                    async with db.transaction() as tx:
                        await tx.conn.execute(delete(idempotency_keys).where(idempotency_keys.c.pk == row.pk))
                    continue
                if row.request_hash != fingerprint:
                    await send_error(
                        send,
                        422,
                        error_bytes(
                            422,
                            "this Idempotency-Key was already used with a different request",
                            code="idempotency_key_reused",
                            param="Idempotency-Key",
                            type="idempotency_error",
                        ),
                    )
                    return
                if row.status_code is None:
                    await send_error(
                        send,
                        409,
                        error_bytes(
                            409,
                            "a request with this Idempotency-Key is still in progress; retry later",
                            code="idempotency_key_in_use",
                            param="Idempotency-Key",
                            type="idempotency_error",
                        ),
                    )
                    return
                stored = (row.body or "").encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": row.status_code,
                        "headers": [
                            (b"content-type", (row.content_type or "application/json").encode()),
                            (b"content-length", str(len(stored)).encode()),
                            (b"idempotent-replayed", b"true"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": stored})
                return
        if not claimed:
            await self.app(scope, replay_receive(body), send)
            return

        # Buffer the answer and store it before the client sees it: a retry that arrives the
        # moment the first answer does must find it stored, not "in progress".
        messages: list[Message] = []
        try:
            await self.app(scope, replay_receive(body), _collect(messages))
        finally:
            start = next((m for m in messages if m["type"] == "http.response.start"), None)
            status = start["status"] if start else 500
            keep = status < 500 and status not in (401, 429)
            async with db.transaction() as tx:
                where = (idempotency_keys.c.scope == credential) & (idempotency_keys.c.key == key)
                if keep and start is not None:
                    content_type = dict(start.get("headers", [])).get(b"content-type", b"application/json")
                    await tx.conn.execute(
                        update(idempotency_keys)
                        .where(where)
                        .values(
                            status_code=status,
                            content_type=content_type.decode("latin-1")[:100],
                            body=b"".join(m.get("body", b"") for m in messages[1:]).decode(
                                "utf-8", "replace"
                            ),
                        )
                    )
                else:
                    await tx.conn.execute(delete(idempotency_keys).where(where))
        for message in messages:
            await send(message)


def _collect(messages: list[Message]) -> Send:
    async def send(message: Message) -> None:
        messages.append(message)

    return send
