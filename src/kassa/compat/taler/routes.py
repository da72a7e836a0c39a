"""`GET /public/poll-payment`, at exactly the seed's path (shared/seeds/taler-poll-payment-api.md).

The order is found by `order_id` and `h_contract` (no merchant in the path: the contract hash tells
one merchant's order from another's with the same id); sessions follow services/sessions.py. With
`timeout`, a negative answer waits until the order is paid in this session or the time is up
(capped at `KASSA_LONG_POLL_MAX_MS`), woken by the same change hub as the API's long polls.
Errors are Taler's `{"code", "hint"}`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request, Response

from kassa.api.auth import runtime_of
from kassa.api.longpoll import wait_for_change
from kassa.compat.taler.wire import TalerError, parse_poll, poll_answer
from kassa.errors import KassaError
from kassa.runtime import Runtime
from kassa.services.sessions import SessionStatus

router = APIRouter(include_in_schema=False)
_NO_STORE = {"Cache-Control": "no-store"}


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status, headers=_NO_STORE, media_type="application/json"
    )


@router.get("/public/poll-payment")
async def poll_payment(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        poll = parse_poll(request.query_params)
        merchant_pk, order_id = await runtime.sessions.find(poll.order_id, poll.h_contract)
        status = await runtime.sessions.status(merchant_pk, order_id, poll.session_id)
        wait_ms = min(poll.timeout * 1000, runtime.settings.long_poll_max_ms)
        if wait_ms > 0 and not status.settled:
            status = await _until_paid(request, runtime, merchant_pk, status, poll.session_id, wait_ms / 1000)
    except TalerError as exc:
        return _json(exc.body(), exc.status)
    except KassaError as exc:
        taler = TalerError.of(exc)
        if taler is None:
            raise
        return _json(taler.body(), taler.status)
    return _json(poll_answer(status))


async def _until_paid(
    request: Request,
    runtime: Runtime,
    merchant_pk: int,
    status: SessionStatus,
    session_id: str | None,
    seconds: float,
) -> SessionStatus:
    """The order's status once its answer is settled (paid, mostly), or when the time is up or the
    client has gone. Each change of the order wakes it; it reads the order again and goes on waiting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    order_id = status.order["id"]
    while not status.settled and (left := deadline - loop.time()) > 0:
        version = status.order["version"]
        with runtime.hub.subscription(order_id, version) as changed:
            # Read again after subscribing: a change since the last read is not lost.
            status = await runtime.sessions.status(merchant_pk, order_id, session_id)
            if status.order["version"] == version:
                if not await wait_for_change(request, changed, left):
                    break
                status = await runtime.sessions.status(merchant_pk, order_id, session_id)
    return status
