from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from kassa.clock import ManualClock

from .support import T0, Handler, MakeClient


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def mock_client() -> AsyncIterator[MakeClient]:
    """Makes AsyncClients answering through a handler; all are closed after the test."""
    clients: list[httpx.AsyncClient] = []

    def make(handler: Handler) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
