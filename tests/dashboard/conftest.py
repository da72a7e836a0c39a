from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.dashboard.support import PASSWORD, signed_in_client
from tests.support.server import KassaServer


@pytest.fixture
def sign_in(kassa: KassaServer) -> Iterator[Callable[..., httpx.Client]]:
    """Signs in as a user and hands back the browser-like client (closed after the test)."""
    clients: list[httpx.Client] = []

    def make(email: str, password: str = PASSWORD) -> httpx.Client:
        clients.append(signed_in_client(kassa, email, password))
        return clients[-1]

    yield make
    for client in clients:
        client.close()
