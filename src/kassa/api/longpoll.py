"""Waiting for an order to change, shared by the API's long poll and the checkout status endpoint."""

from __future__ import annotations

import asyncio

from fastapi import Request


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def wait_for_change(request: Request, changed: asyncio.Future[None], seconds: float) -> bool:
    """Until the order changes (True), the time is up, or the client has gone (closed tab, dropped
    connection: the waiter is freed at once instead of holding its slot to the timeout)."""
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({changed, gone}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    return changed.done()
