"""Safe outbound HTTP for webhook delivery.

Webhook URLs are chosen by merchants, so a request to one must not become a way into the
server's own network (SSRF). The address check has to happen on the address the socket actually
connects to: checking a name and then letting the HTTP client resolve it again leaves a
DNS-rebinding window (first answer public, second answer 127.0.0.1).

Approach: a custom httpcore network backend. httpcore hands the backend ``connect_tcp(host,
port)`` for every new connection; :class:`_GuardedBackend` resolves the name once, refuses the
connection if any resolved address is not public, and then connects to the checked IP literal
itself. Everything above the socket is untouched httpx: the URL keeps the hostname, so the
``Host`` header, TLS SNI, certificate verification and the connection pool key all use the
original name, and a pooled connection is always one whose address was checked when it was
opened. (The alternative, rewriting the URL to the IP and passing the ``sni_hostname``
extension, keys the pool by IP, so a connection verified for one merchant's hostname could be
reused for another hostname on the same CDN address.)

:class:`OutboundClient` is an ``httpx.AsyncClient`` wired to that backend, with redirects off,
no environment proxies (a proxy would resolve the name itself, defeating the check) and no cookie
jar. :func:`deliver` insists on one unless ``allow_private=True``. The policy reaches the backend
through a context variable (httpcore opens connections in the task that sends the request), so
one client serves both modes; ``allow_private=True`` still resolves once and connects to the
resolved address, it only skips the check. It is meant as a process-wide development setting:
a pooled connection opened with the check skipped could be reused by a checked call to the same
host.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import cast

import httpcore
import httpx
import sniffio

from kassa import __version__

__all__ = [
    "MAX_URL_LENGTH",
    "DeliveryAttempt",
    "OutboundClient",
    "OutboundPools",
    "Resolver",
    "UnsafeTarget",
    "deliver",
    "parse_retry_after",
    "refusal_reason",
    "system_resolver",
    "validate_target_url",
]

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
_ERROR_LIMIT = 300

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Turns (host, port) into IP address strings, in the order to try them."""


class UnsafeTarget(Exception):
    """The target URL or the address it resolves to is not allowed."""


# --- target URL and address policy -----------------------------------------------------------

_HOST_RE = re.compile(r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?")


def validate_target_url(url: str) -> None:
    """Check the URL's shape; raise :class:`UnsafeTarget` if it cannot be a webhook target.

    Addresses are not checked here: that happens at send time, after DNS resolution.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeTarget("URL contains whitespace or control characters")
    try:
        parsed = httpx.URL(url)  # the parser that will send the request, so no parser differential
    except httpx.InvalidURL as exc:
        raise UnsafeTarget(f"invalid URL: {exc}") from None
    if not parsed.scheme:
        raise UnsafeTarget("URL must be absolute (http:// or https://)")
    if parsed.scheme not in ("http", "https"):
        raise UnsafeTarget(f"scheme {parsed.scheme!r} is not allowed (use http or https)")
    if parsed.userinfo:
        raise UnsafeTarget("URL must not contain credentials")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UnsafeTarget("URL has no host")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeTarget("invalid IPv6 host") from None
    elif not _HOST_RE.fullmatch(host):
        raise UnsafeTarget("invalid host name")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise UnsafeTarget(f"invalid port {parsed.port}")


_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address)
        "192.0.0.192",  # Oracle Cloud
    )
)

# Special-purpose blocks some Python versions still call global.
_SPECIAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "240.0.0.0/4",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
    )
)
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why a connection to this address is refused by default, or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # drop any %scope
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal_reason(embedded)
            return None if reason is None else f"{reason} (in {address})"
    if address in _METADATA:
        kind = "cloud metadata"
    elif address.is_loopback:
        kind = "loopback"
    elif address.is_unspecified:
        kind = "unspecified"
    elif address.is_link_local:
        kind = "link-local"
    elif address.is_multicast:
        kind = "multicast"
    elif address in _UNIQUE_LOCAL:
        kind = "unique-local"
    elif isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        kind = "site-local"
    elif address.is_reserved:
        kind = "reserved"
    elif address.is_private:
        kind = "private"
    elif any(address in net for net in _SPECIAL) or not address.is_global:
        kind = "reserved"
    else:
        return None
    return f"{kind} address {address}"


# --- the guarded connection path ---------------------------------------------------------------

_ALLOW_PRIVATE: contextvars.ContextVar[bool] = contextvars.ContextVar("kassa_allow_private", default=False)


class _DnsError(httpcore.ConnectError):
    pass


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (getaddrinfo), keeping its order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_WRITE_BATCH = 64 * 1024  # a request larger than this is written as it comes


class _AsyncioStream(httpcore.AsyncNetworkStream):
    """An asyncio stream pair as an httpcore stream.

    httpcore's stock backend goes through anyio, whose cancel scopes, attribute lookups and
    checkpoints cost about a quarter of a webhook send's CPU (bench/webhooks); the worker only runs
    on asyncio, so its connections use asyncio's streams directly. Timeouts and errors map onto
    httpcore's exceptions as the stock backend maps them.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        # Writes are gathered until the client reads (it reads once the whole request is written):
        # headers and body leave in one system call instead of one each.
        self._unsent: list[bytes] = []
        self._unsent_size = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        if self._unsent:
            await self._flush(timeout)
        try:
            if timeout is None:  # (deliver() bounds the whole attempt instead)
                return await self._reader.read(max_bytes)
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        self._unsent.append(buffer)
        self._unsent_size += len(buffer)
        if self._unsent_size >= _WRITE_BATCH:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:  # noqa: ASYNC109
        data = b"".join(self._unsent)
        self._unsent.clear()
        self._unsent_size = 0
        try:
            self._writer.write(data)
            if timeout is None:
                await self._writer.drain()
            else:
                async with asyncio.timeout(timeout):
                    await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except (OSError, RuntimeError) as exc:  # RuntimeError: written after close
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        if self._writer.get_extra_info("ssl_object") is not None:
            # No close_notify exchange, as httpcore's stock backend: closed at once, not after the
            # peer answers (asyncio would otherwise hold the socket open for the shutdown).
            self._writer.transport.abort()
        else:
            self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError) as exc:
            self._writer.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return self

    def get_extra_info(self, info: str) -> object:
        if info == "is_readable":  # asked of idle pooled connections: has the server closed it?
            # The transport reads as data arrives, so a server's close is already in the reader.
            return self._reader.at_eof() or self._writer.is_closing()
        return self._writer.get_extra_info(
            {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        )


async def _open_stream(
    address: str,
    port: int,
    connect_timeout: float | None,
    local_address: str | None,
    socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
) -> httpcore.AsyncNetworkStream:
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(
                address, port, local_addr=(local_address, 0) if local_address else None
            )
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(str(exc)) from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from exc
    sock = writer.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return _AsyncioStream(reader, writer)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve once, check every address, connect to a checked address."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolve = resolver

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = list(await self._resolve(host, port))
        except TimeoutError:
            raise httpcore.ConnectTimeout("DNS resolution timed out") from None
        except OSError as exc:
            raise _DnsError(f"DNS resolution failed: {exc}") from exc
        if not addresses:
            raise _DnsError("DNS resolution returned no addresses")
        try:
            parsed = [ipaddress.ip_address(address.partition("%")[0]) for address in addresses]
        except ValueError as exc:
            raise _DnsError(f"DNS resolution returned an invalid address: {exc}") from exc
        if not _ALLOW_PRIVATE.get():
            for ip in parsed:
                reason = refusal_reason(ip)
                if reason is not None:
                    raise UnsafeTarget(reason)
        last_error: httpcore.ConnectError | None = None
        for address in addresses:
            remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
            try:
                return await _open_stream(address, port, remaining, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeTarget("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request/response mapping, error mapping) over a guarded pool."""

    def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx.Limits, resolver: Resolver) -> None:
        # Deliberately not calling super().__init__: it would build a second, unguarded pool.
        # AsyncHTTPTransport uses nothing but self._pool.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(resolver),
        )


class _NoCookies(httpx.Cookies):
    """Keeps nothing: a receiver's Set-Cookie never reaches a later delivery (and the answer's
    headers are not even parsed for cookies, which httpx otherwise does on every response)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return None


class OutboundClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` for webhook delivery: address-checked connections, no redirects,
    no environment proxies, no cookies. Create one per worker and reuse it (connection pooling)."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        resolver: Resolver = system_resolver,
        user_agent: str = f"Kassa-Webhooks/{__version__}",
    ) -> None:
        super().__init__(
            transport=_GuardedTransport(
                verify=verify,
                limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
                resolver=resolver,
            ),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": user_agent},
        )
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("an OutboundClient keeps no cookies")


class OutboundPools:
    """One :class:`OutboundClient` per delivery target (a webhook endpoint, a callback URL), each
    with as many connections as that target may have requests in flight.

    httpcore looks at every connection of a pool on each request (to drop expired ones), so one
    shared pool costs time in proportion to all open connections on every request: in
    bench/webhooks (32 senders, 8 endpoints) httpx spends 1.45 ms of CPU per request with one client
    and 0.70 ms with a client of 4 connections per endpoint (its two reference loops). Pools
    per target also keep one target's connections from crowding out another's. At most
    `max_targets` pools are kept; the least recently used idle ones are closed beyond that.
    """

    def __init__(
        self,
        per_target: int,
        *,
        verify: ssl.SSLContext | bool = True,
        resolver: Resolver = system_resolver,
        max_targets: int = 256,
    ) -> None:
        self.per_target = per_target
        self.max_targets = max_targets
        # One TLS context for every pool: building one (loading the CA bundle) takes tens of ms.
        self._verify = httpx.create_ssl_context(verify=verify)  # (a context given is used as is)
        self._resolver = resolver
        self._clients: dict[str, OutboundClient] = {}  # oldest use first
        self._busy: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def client(self, target: str) -> AsyncIterator[OutboundClient]:
        client = self._clients.pop(target, None)
        if client is None:
            limits = httpx.Limits(max_connections=self.per_target, max_keepalive_connections=self.per_target)
            client = OutboundClient(verify=self._verify, limits=limits, resolver=self._resolver)
        self._clients[target] = client  # now the most recently used
        self._busy[target] = self._busy.get(target, 0) + 1
        try:
            yield client
        finally:
            self._busy[target] -= 1
            if not self._busy[target]:
                del self._busy[target]
            await self._trim()

    async def _trim(self) -> None:
        excess = len(self._clients) - self.max_targets
        for target in [t for t in self._clients if t not in self._busy][: max(excess, 0)]:
            await self._clients.pop(target).aclose()

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()


# --- one delivery attempt ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """What happened on one POST. ``error`` is set whenever ``ok`` is false."""

    status_code: int | None
    ok: bool
    duration_ms: int
    response_excerpt: str
    error: str | None
    retry_after: float | None
    gone: bool


_DIGITS = re.compile(r"[0-9]{1,12}")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    text = value.strip()
    if _DIGITS.fullmatch(text):
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are GMT anyway
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _describe(exc: Exception) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timeout"
    causes = list(_chain(exc))
    for cause in causes:
        if isinstance(cause, UnsafeTarget):
            return f"refused: {cause}"
        if isinstance(cause, _DnsError):
            return str(cause)
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {exc}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {exc}"
    if isinstance(exc, httpx.NetworkError):
        return f"network error: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _status_error(status: int, location: str | None) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400 and location:
        return f"redirect not followed (HTTP {status} to {location[:200]})"
    if status == 410:
        return "HTTP 410 Gone"
    return f"HTTP {status}"


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> httpx.URL | str:
    """The parsed URL, or why it cannot be a target; remembered: a URL is checked once, not per send."""
    try:
        validate_target_url(url)
    except UnsafeTarget as exc:
        return str(exc)
    return httpx.URL(url)


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    allow_private: bool,
    timeout: float = 15.0,  # noqa: ASYNC109 (bounds the whole attempt, see below)
    excerpt_limit: int = 2048,
) -> DeliveryAttempt:
    """POST ``body`` to ``url`` once and report the outcome; never raises for network trouble.

    ``timeout`` bounds the whole attempt (connect, send, response headers). Once the headers are
    in, a slow or broken response body only shortens the excerpt. ``client`` must be an
    :class:`OutboundClient` unless ``allow_private`` is true (development only).
    """
    if not allow_private and not isinstance(client, OutboundClient):
        raise TypeError("deliver() needs an OutboundClient to enforce the address policy")
    started = time.perf_counter()

    def elapsed() -> int:
        return round((time.perf_counter() - started) * 1000)

    target = _target(url)
    if isinstance(target, str):
        return DeliveryAttempt(None, False, elapsed(), "", f"refused: {target}", None, False)

    # Lower-case names, so the caller's value replaces a default rather than joining it.
    request_headers = {
        "content-type": "application/json",
        "accept-encoding": "identity",
        **{name.lower(): value for name, value in headers.items()},
    }
    limit = max(excerpt_limit, 0)
    response: httpx.Response | None = None
    excerpt = bytearray()
    token = _ALLOW_PRIVATE.set(allow_private)
    # This runs on asyncio (the network backend above is asyncio's streams): say so to sniffio, or
    # httpcore has it find out, by an import and `asyncio.current_task()`, for every lock, event
    # and shield it creates (a tenth of a send's CPU in bench/webhooks).
    library = sniffio.current_async_library_cvar.set("asyncio")
    try:
        async with (
            asyncio.timeout(timeout),
            # One deadline for the whole attempt (above), not one per socket operation: each
            # timeout costs a timer and, on Python 3.11, a getpid() system call per loop lookup.
            client.stream(
                "POST", target, content=body, headers=request_headers, timeout=None, follow_redirects=False
            ) as response,
            # raw bytes: no decompression, so a small response cannot inflate in memory
            aclosing(cast(AsyncGenerator[bytes, None], response.aiter_raw())) as chunks,
        ):
            async for chunk in chunks:
                excerpt += chunk[: limit - len(excerpt)]
                if len(excerpt) >= limit:
                    break
    except (TimeoutError, httpx.HTTPError, UnsafeTarget) as exc:
        if response is None:
            reason = _describe(exc)[:_ERROR_LIMIT]
            log.info("webhook delivery to %s failed: %s", httpx.URL(url).host, reason)
            return DeliveryAttempt(None, False, elapsed(), "", reason, None, False)
    finally:
        sniffio.current_async_library_cvar.reset(library)
        _ALLOW_PRIVATE.reset(token)

    assert response is not None  # every path without a response returned above
    status = response.status_code
    error = _status_error(status, response.headers.get("Location"))
    log.debug("webhook delivery to %s: HTTP %d in %d ms", response.url.host, status, elapsed())
    return DeliveryAttempt(
        status_code=status,
        ok=error is None,
        duration_ms=elapsed(),
        response_excerpt=excerpt.decode("utf-8", errors="replace"),
        error=error,
        retry_after=parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC)),
        gone=status == 410,
    )
