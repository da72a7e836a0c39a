"""Per-key and per-address request limits on the endpoints anyone can hit hard: order creation (per
API key, on every front), checkout and refund pages and public status polls (per client address).

Counting is done by `limits` (sliding-window counters) in the storage `KASSA_RATE_LIMIT_STORAGE` names:
in-process memory by default, so each API process counts its own requests; a Redis URI shares the
counts between processes. A refused request gets `429` with `Retry-After`, in the shape of the front
it was sent to. The client address is the peer's, or what a trusted proxy says it is (uvicorn's
`forwarded_allow_ips`, `KASSA_FORWARDED_ALLOW_IPS`).

When the storage cannot be reached (Redis down), requests pass uncounted and a warning is logged (at
most once a minute): a limit protects Kassa from floods, and losing it for a while costs less than
refusing every shop's orders.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from dataclasses import dataclass

import limits
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Receive, Scope, Send

from kassa.api.errors import error_bytes
from kassa.api.middleware import GREENFIELD_PREFIXES, ROUTE_KEY, header, send_error
from kassa.config import Settings

log = logging.getLogger("kassa.rate_limits")
STORAGE_WARNING_EVERY = 60.0  # seconds between two warnings about an unreachable storage

# What each limit covers: (method, path pattern). Order creation on every front that makes orders.
ORDER_CREATION = re.compile(
    r"/api/v1/orders|/api/v1/stores/[^/]+/invoices/?|/invoice/?|/merchants/[^/]+|(/api)?/pay/sign"
)
POLLS = re.compile(
    r"/pay/[^/]+/status|/public/poll-payment|/invoice/[^/]+(/events)?|/merchants/[^/]+/orders/[^/]+"
)
PAGES = re.compile(r"/pay/(?!static/|sign$|check$)[^/]+(/.*)?|/i/[^/]+|/refund/[^/]+|/ext/pay/.*")


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    items: tuple[limits.RateLimitItem, ...]


def parse(name: str, value: str) -> Limit:
    """`value` in `limits` notation; ValueError names the setting when it does not parse."""
    try:
        items = tuple(limits.parse_many(value)) if value.strip() else ()
    except ValueError:
        example = "'100/minute' or '10/second;300/minute'"
        raise ValueError(f"{name}: {value!r} is not a rate such as {example}") from None
    return Limit(name, items)


def storage(uri: str) -> Storage:
    """`memory://`, `redis://…` and the other `limits` storages, in their asyncio flavour."""
    found = storage_from_string(uri if uri.startswith("async+") else f"async+{uri}", wrap_exceptions=True)
    if not isinstance(found, Storage):
        raise ValueError(f"rate_limit_storage: {uri!r} has no asyncio storage")
    return found


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.orders = parse("rate_limit_orders", settings.rate_limit_orders)
        self.pages = parse("rate_limit_pages", settings.rate_limit_pages)
        self.polls = parse("rate_limit_polls", settings.rate_limit_polls)
        self.storage = storage(settings.rate_limit_storage)
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self._warned_at = -math.inf

    def _classify(self, scope: Scope) -> tuple[Limit, str] | None:
        method, path = scope["method"], scope["path"]
        client = scope.get("client")
        address = client[0] if client else "-"
        if method == "POST" and ORDER_CREATION.fullmatch(path):
            credential = header(scope, b"authorization")
            if credential is None:  # fronts whose creation is signed in the body: count the sender
                return self.orders, f"ip:{address}"
            # Keyed by a digest of the credential: the key itself is never held here.
            return self.orders, "key:" + hashlib.sha256(credential.encode()).hexdigest()[:32]
        if method in ("GET", "HEAD"):
            if POLLS.fullmatch(path):
                return self.polls, f"ip:{address}"
            if PAGES.fullmatch(path):
                return self.pages, f"ip:{address}"
        elif method == "POST" and PAGES.fullmatch(path):  # a page's forms: method choice, cancel, refund
            return self.pages, f"ip:{address}"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = self._classify(scope)
        if found is not None:
            limit, who = found
            try:
                refused = await self._count(limit, who)
            except StorageError as exc:
                refused = None
                self._storage_failed(exc)
            if refused is not None:
                item, wait = refused
                scope[ROUTE_KEY] = f"(rate limit: {limit.name})"
                await self._refuse(scope, send, wait, item)
                return
        await self.app(scope, receive, send)

    async def _count(self, limit: Limit, who: str) -> tuple[limits.RateLimitItem, int] | None:
        """Counts the request; the rate it exceeds and the seconds until it may try again, if any."""
        for item in limit.items:
            if not await self.limiter.hit(item, limit.name, who):
                stats = await self.limiter.get_window_stats(item, limit.name, who)
                return item, max(1, math.ceil(stats.reset_time - time.time()))
        return None

    def _storage_failed(self, exc: StorageError) -> None:
        now = time.monotonic()
        if now - self._warned_at >= STORAGE_WARNING_EVERY:
            self._warned_at = now
            # The error's type only: its text may carry the storage URI, password included.
            log.warning(
                "rate limit storage (KASSA_RATE_LIMIT_STORAGE) failed with %s; requests pass uncounted",
                type(exc.storage_error).__name__,
            )

    @staticmethod
    async def _refuse(scope: Scope, send: Send, wait: int, item: limits.RateLimitItem) -> None:
        message = f"too many requests (at most {item}); try again in {wait} s"
        if scope["path"].startswith(GREENFIELD_PREFIXES):
            body = json.dumps({"code": "too-many-requests", "message": message}).encode()
        else:
            body = error_bytes(429, message, code="rate_limited", type="rate_limit_error")
        await send_error(send, 429, body, [(b"retry-after", str(wait).encode())])
