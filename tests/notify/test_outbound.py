"""deliver() against a real HTTP receiver on 127.0.0.1, and the target/address policy."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from kassa.notify.outbound import (
    MAX_URL_LENGTH,
    OutboundClient,
    OutboundPools,
    UnsafeTarget,
    deliver,
    parse_retry_after,
    refusal_reason,
    validate_target_url,
)

BODY = b'{"type":"order.paid","data":{"id":"ord_1"}}'
HEADERS = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": "v1,abc"}


@pytest.fixture
async def client() -> AsyncIterator[OutboundClient]:
    async with OutboundClient() as c:
        yield c


class FakeResolver:
    """Answers every name with fixed addresses and counts the lookups."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        return self.answers


# --- responses --------------------------------------------------------------------------------


async def test_2xx_is_ok_and_the_request_arrives_intact(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/ok"), BODY, HEADERS, allow_private=True)

    assert attempt.ok
    assert attempt.status_code == 200
    assert attempt.error is None
    assert attempt.response_excerpt == "thanks"
    assert not attempt.gone
    assert attempt.retry_after is None
    assert attempt.duration_ms >= 0
    [request] = receiver.requests
    assert request.body == BODY
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Kassa-Webhooks/")


async def test_204_without_body_is_ok(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/no-content"), BODY, HEADERS, allow_private=True)
    assert attempt.ok
    assert attempt.status_code == 204
    assert attempt.response_excerpt == ""


async def test_caller_content_type_wins(client, receiver) -> None:
    headers = {**HEADERS, "content-type": "application/cloudevents+json"}
    await deliver(client, receiver.url("/ok"), BODY, headers, allow_private=True)
    assert receiver.requests[0].headers["content-type"] == "application/cloudevents+json"


async def test_500_fails_with_an_excerpt(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/fail"), BODY, HEADERS, allow_private=True)

    assert not attempt.ok
    assert attempt.status_code == 500
    assert attempt.error == "HTTP 500"
    assert attempt.response_excerpt == "boom: database is down"
    assert not attempt.gone


async def test_undecodable_excerpt_is_replaced_not_raised(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/binary"), BODY, HEADERS, allow_private=True)
    assert attempt.response_excerpt.startswith("bad ")
    assert "\ufffd" in attempt.response_excerpt


async def test_410_means_gone(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/gone"), BODY, HEADERS, allow_private=True)

    assert attempt.gone
    assert not attempt.ok
    assert attempt.status_code == 410


async def test_retry_after_in_seconds(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/retry-seconds"), BODY, HEADERS, allow_private=True)

    assert attempt.status_code == 429
    assert attempt.retry_after == 120.0


async def test_retry_after_as_http_date(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/retry-date"), BODY, HEADERS, allow_private=True)

    assert attempt.status_code == 503
    assert attempt.retry_after is not None
    assert 290 <= attempt.retry_after <= 300  # the date has whole seconds


async def test_redirect_is_not_followed(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/redirect"), BODY, HEADERS, allow_private=True)

    assert not attempt.ok
    assert attempt.status_code == 302
    assert attempt.error == "redirect not followed (HTTP 302 to /ok)"
    assert receiver.paths() == ["/redirect"]


async def test_a_plain_client_that_follows_redirects_still_does_not(receiver) -> None:
    async with httpx.AsyncClient(follow_redirects=True) as plain:
        attempt = await deliver(plain, receiver.url("/redirect"), BODY, HEADERS, allow_private=True)
    assert attempt.status_code == 302
    assert receiver.paths() == ["/redirect"]


async def test_timeout_is_reported(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/slow"), BODY, HEADERS, allow_private=True, timeout=0.3)

    assert not attempt.ok
    assert attempt.status_code is None
    assert attempt.error == "timeout"
    assert 250 <= attempt.duration_ms < 1400


async def test_a_slow_body_after_2xx_headers_only_shortens_the_excerpt(client, receiver) -> None:
    attempt = await deliver(
        client, receiver.url("/slow-body"), BODY, HEADERS, allow_private=True, timeout=0.5
    )

    assert attempt.ok
    assert attempt.status_code == 200
    assert attempt.response_excerpt == "12345"
    assert attempt.duration_ms < 1400


async def test_excerpt_is_bounded(client, receiver) -> None:
    small = await deliver(client, receiver.url("/big"), BODY, HEADERS, allow_private=True, excerpt_limit=100)
    default = await deliver(client, receiver.url("/big"), BODY, HEADERS, allow_private=True)

    assert small.response_excerpt == "x" * 100
    assert len(default.response_excerpt) == 2048
    assert default.status_code == 500


async def test_connection_refused(client) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    attempt = await deliver(client, f"http://127.0.0.1:{port}/", BODY, HEADERS, allow_private=True)

    assert attempt.error == "connection refused"
    assert attempt.status_code is None


async def test_cookies_are_not_kept_between_deliveries(client, receiver) -> None:
    await deliver(client, receiver.url("/cookie"), BODY, HEADERS, allow_private=True)
    attempt = await deliver(client, receiver.url("/echo"), BODY, HEADERS, allow_private=True)

    assert "cookie" not in json.loads(attempt.response_excerpt)


# --- address policy at send time ---------------------------------------------------------------


async def test_loopback_is_refused_by_default(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/ok"), BODY, HEADERS, allow_private=False)

    assert not attempt.ok
    assert attempt.status_code is None
    assert attempt.error == "refused: loopback address 127.0.0.1"
    assert receiver.requests == []


async def test_loopback_is_allowed_with_allow_private(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/ok"), BODY, HEADERS, allow_private=True)
    assert attempt.ok
    assert receiver.paths() == ["/ok"]


async def test_a_name_resolving_to_loopback_is_refused(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/ok", host="localhost"), BODY, HEADERS, allow_private=False)

    assert attempt.error is not None
    assert attempt.error.startswith("refused: loopback address ")
    assert receiver.requests == []


async def test_localhost_works_with_allow_private(client, receiver) -> None:
    attempt = await deliver(client, receiver.url("/ok", host="localhost"), BODY, HEADERS, allow_private=True)
    assert attempt.ok


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://10.0.0.1/hook", "refused: private address 10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "refused: cloud metadata address 169.254.169.254"),
        ("http://[fd00:ec2::254]/", "refused: cloud metadata address fd00:ec2::254"),
        ("http://100.100.100.200/", "refused: cloud metadata address 100.100.100.200"),
        ("http://[::1]:8080/", "refused: loopback address ::1"),
        ("http://0.0.0.0:8080/", "refused: unspecified address 0.0.0.0"),
        ("http://[::ffff:192.168.1.1]/", "refused: private address 192.168.1.1 (in ::ffff:c0a8:101)"),
    ],
)
async def test_internal_addresses_are_refused_before_connecting(client, url: str, error: str) -> None:
    attempt = await deliver(client, url, BODY, HEADERS, allow_private=False, timeout=2)
    assert attempt.error == error


async def test_the_connection_goes_to_the_resolved_address_with_the_original_host(receiver) -> None:
    resolver = FakeResolver("127.0.0.1")
    async with OutboundClient(resolver=resolver) as client:
        url = receiver.url("/echo", host="hook.example")
        first = await deliver(client, url, BODY, HEADERS, allow_private=True)
        second = await deliver(client, url, BODY, HEADERS, allow_private=True)

    assert first.ok
    assert second.ok
    assert json.loads(first.response_excerpt)["host"] == f"hook.example:{receiver.port}"
    # one lookup: the pooled connection is the checked one, nothing resolves the name again
    assert resolver.calls == ["hook.example"]


async def test_any_internal_address_among_the_answers_refuses() -> None:
    resolver = FakeResolver("93.184.215.14", "127.0.0.1")
    async with OutboundClient(resolver=resolver) as client:
        attempt = await deliver(client, "https://rebind.example/hook", BODY, HEADERS, allow_private=False)

    assert attempt.error == "refused: loopback address 127.0.0.1"
    assert resolver.calls == ["rebind.example"]


async def test_dns_failure_is_reported() -> None:
    async def broken(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with OutboundClient(resolver=broken) as client:
        attempt = await deliver(client, "https://nowhere.example/", BODY, HEADERS, allow_private=False)

    assert attempt.error is not None
    assert attempt.error.startswith("DNS resolution failed")


async def test_a_resolver_answer_that_is_not_an_address_is_a_dns_error() -> None:
    async with OutboundClient(resolver=FakeResolver("not-an-ip")) as client:
        attempt = await deliver(client, "https://odd.example/", BODY, HEADERS, allow_private=True)
    assert attempt.error is not None
    assert attempt.error.startswith("DNS resolution returned an invalid address")


async def test_the_address_check_needs_the_guarded_client(receiver) -> None:
    async with httpx.AsyncClient() as plain:
        with pytest.raises(TypeError, match="OutboundClient"):
            await deliver(plain, receiver.url("/ok"), BODY, HEADERS, allow_private=False)
        allowed = await deliver(plain, receiver.url("/ok"), BODY, HEADERS, allow_private=True)
    assert allowed.ok


async def test_guarded_client_refuses_internal_addresses_outside_deliver_too(receiver) -> None:
    async with OutboundClient() as client:
        with pytest.raises(UnsafeTarget, match="loopback"):
            await client.get(receiver.url("/ok"))
    assert receiver.requests == []


# --- TLS: certificate checked against the hostname while connecting to the checked IP ----------


async def test_tls_verifies_the_hostname_not_the_ip(tls_receiver, tls_material) -> None:
    resolver = FakeResolver("127.0.0.1")
    async with OutboundClient(verify=tls_material.client_context(), resolver=resolver) as client:
        attempt = await deliver(
            client, tls_receiver.url("/ok", host="hook.example"), BODY, HEADERS, allow_private=True
        )

    assert attempt.ok, attempt.error
    assert tls_receiver.requests[0].headers["host"] == f"hook.example:{tls_receiver.port}"


async def test_tls_rejects_a_certificate_for_another_name(tls_receiver, tls_material) -> None:
    resolver = FakeResolver("127.0.0.1")
    async with OutboundClient(verify=tls_material.client_context(), resolver=resolver) as client:
        attempt = await deliver(
            client, tls_receiver.url("/ok", host="other.example"), BODY, HEADERS, allow_private=True
        )

    assert attempt.error is not None
    assert attempt.error.startswith("TLS certificate verification failed")
    assert "other.example" in attempt.error
    assert tls_receiver.requests == []


# --- URL shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/hook", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("/relative/hook", "absolute"),
        ("https://user:pass@example.com/hook", "credentials"),
        ("https://token@example.com/hook", "credentials"),
        ("http:///nohost", "no host"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\r\nX-Injected: 1", "whitespace"),
        ("https://example.com:0/", "port"),
        ("https://example.com:99999/", "port"),
        ("https://example.com/" + "a" * MAX_URL_LENGTH, "longer"),
        ("https://exa%00mple.com/", "host"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(UnsafeTarget, match=message):
        validate_target_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks/kassa?token=abc",
        "http://example.com:8080/",
        "https://[2606:4700:4700::1111]/hook",
        "https://münchen.example/hook",
        "https://hooks_1.example.com/",
    ],
)
def test_good_urls_pass(url: str) -> None:
    validate_target_url(url)


async def test_non_http_scheme_is_refused_by_deliver(client) -> None:
    attempt = await deliver(client, "ftp://example.com/hook", BODY, HEADERS, allow_private=False)
    assert attempt.error == "refused: scheme 'ftp' is not allowed (use http or https)"
    assert attempt.status_code is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback address 127.0.0.1"),
        ("127.255.0.9", "loopback address 127.255.0.9"),
        ("10.1.2.3", "private address 10.1.2.3"),
        ("172.16.0.1", "private address 172.16.0.1"),
        ("192.168.0.1", "private address 192.168.0.1"),
        ("169.254.1.1", "link-local address 169.254.1.1"),
        ("169.254.169.254", "cloud metadata address 169.254.169.254"),
        ("168.63.129.16", "cloud metadata address 168.63.129.16"),
        ("100.100.100.200", "cloud metadata address 100.100.100.200"),
        ("100.64.0.1", "reserved address 100.64.0.1"),
        ("224.0.1.1", "multicast address 224.0.1.1"),
        ("240.0.0.1", "reserved address 240.0.0.1"),
        ("255.255.255.255", "reserved address 255.255.255.255"),
        ("0.0.0.0", "unspecified address 0.0.0.0"),  # noqa: S104
        ("::", "unspecified address ::"),
        ("::1", "loopback address ::1"),
        ("fe80::1", "link-local address fe80::1"),
        ("fd12:3456::1", "unique-local address fd12:3456::1"),
        ("fd00:ec2::254", "cloud metadata address fd00:ec2::254"),
        ("fec0::1", "site-local address fec0::1"),
        ("ff02::1", "multicast address ff02::1"),
        ("2001:db8::1", "private address 2001:db8::1"),
        ("::ffff:127.0.0.1", "loopback address 127.0.0.1 (in ::ffff:7f00:1)"),
        ("2002:7f00:1::", "loopback address 127.0.0.1 (in 2002:7f00:1::)"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata address 169.254.169.254 (in 64:ff9b::a9fe:a9fe)"),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_refusal_reason(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


# --- Retry-After --------------------------------------------------------------------------------

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Sat, 01 Mar 2025 12:05:00 GMT", 300.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # in the past: retry now
        ("Saturday, 01-Mar-25 12:01:00 GMT", 60.0),  # obsolete RFC 850 form, still to be accepted
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_parse_retry_after_asctime_form() -> None:
    assert parse_retry_after("Sat Mar  1 12:00:30 2025", NOW) == 30.0


def test_retry_after_is_relative_to_now() -> None:
    assert parse_retry_after("Sat, 01 Mar 2025 12:05:00 GMT", NOW + timedelta(minutes=1)) == 240.0


# --- connections: reuse, a server closing idle ones, pools per target -------------------------


class _ClosingServer:
    """Answers each request with keep-alive, then closes the connection shortly after (as servers
    do with idle keep-alive connections). Counts connections and requests."""

    def __init__(self, close_after: float) -> None:
        self.close_after = close_after
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.requests += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.close_after)
                except TimeoutError:
                    return  # idle too long: close
                raise AssertionError("this server expects one request per connection")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    server = _ClosingServer(close_after=0.05)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with OutboundClient() as client:
            for _ in range(3):
                attempt = await deliver(
                    client, f"http://127.0.0.1:{port}/hook", BODY, HEADERS, allow_private=True
                )
                assert attempt.ok, attempt.error
                await asyncio.sleep(0.2)  # the server closes the idle connection meanwhile
    finally:
        listener.close()
    assert server.requests == 3
    assert server.connections == 3  # a fresh connection each time, no failed reuse


async def test_keep_alive_connections_are_reused(receiver) -> None:
    async with OutboundClient() as client:
        for _ in range(5):
            attempt = await deliver(client, receiver.url("/ok"), BODY, HEADERS, allow_private=True)
            assert attempt.ok
    assert len({r.peer for r in receiver.requests}) == 1  # one connection served all five


async def test_pools_per_target_are_kept_apart_and_trimmed(receiver) -> None:
    pools = OutboundPools(per_target=2, max_targets=2)
    try:
        async with pools.client("a") as a1, pools.client("a") as a2:
            assert a1 is a2
        async with pools.client("b") as b:
            assert b is not a1
            attempt = await deliver(b, receiver.url("/ok"), BODY, HEADERS, allow_private=True)
            assert attempt.ok
        async with pools.client("c") as c:
            assert c not in (a1, b)
        assert set(pools._clients) == {"b", "c"}  # "a", least recently used, was closed
        assert a1.is_closed
    finally:
        await pools.aclose()
