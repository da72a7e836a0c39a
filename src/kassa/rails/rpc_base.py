"""What the rails' JSON-RPC clients share: the error shapes and owning an httpx client.

Each rail keeps its own error classes (``except BitcoinError`` catches all of one rail's), built from
these with the counterpart's name in `server`, so the messages read alike across rails.
"""

from __future__ import annotations

from types import TracebackType
from typing import ClassVar, Self

import httpx


class Unreachable(Exception):
    """Nothing usable came back from the server: connection failure or timeout."""

    server: ClassVar[str] = "RPC server"

    def __init__(self, url: str, method: str, reason: str) -> None:
        self.url = url
        self.method = method
        self.reason = reason
        super().__init__(f"{self.server} at {url} unreachable while calling {method!r}: {reason}")


class HttpFailure(Exception):
    """The server answered, but not with a JSON-RPC answer (HTTP error status, not JSON, ...)."""

    server: ClassVar[str] = "RPC server"

    def __init__(self, url: str, method: str, status_code: int, detail: str) -> None:
        self.url = url
        self.method = method
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"{self.server} at {url} answered {method!r} with HTTP {status_code}: {detail}")


class JsonRpcFailure(Exception):
    """A JSON-RPC error object. ``code`` 0 is never sent by a server: it marks a malformed answer."""

    def __init__(self, code: int, message: str, method: str) -> None:
        self.code = code
        self.message = message
        self.method = method
        super().__init__(f"{method}: JSON-RPC error {code}: {message}")


class OwnedClient:
    """An RPC client over an httpx client it closes only if it made it (`async with` closes it)."""

    def __init__(self, client: httpx.AsyncClient | None, timeout: float) -> None:
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
