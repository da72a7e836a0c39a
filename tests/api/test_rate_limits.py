"""Per-key and per-address limits: order creation on every front, checkout pages, public polls."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kassa.config import ConfigError, load_settings
from tests.support.redis_server import RedisServer
from tests.support.server import KassaServer


@pytest.fixture(scope="module")
def limited(kassa: KassaServer) -> Iterator[KassaServer]:
    server = kassa.sibling(
        rate_limit_orders="3/minute", rate_limit_pages="4/minute", rate_limit_polls="2/minute"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def clear_of_window_edge(window: float = 60, margin: float = 5) -> None:
    """Start a burst well inside one window. `limits`' sliding-window counter weighs the previous
    epoch-aligned window in, rounding down, so a burst that crosses a window's edge may count one
    request fewer than it sent (the 4th of a 3/minute burst let through; seen once in CI)."""
    into = time.time() % window
    if into > window - margin:
        time.sleep(window - into + 0.05)


def client(server: KassaServer, key: str | None = None, address: str = "198.51.100.1") -> httpx.Client:
    """As a client at `address`: the test server trusts X-Forwarded-For from loopback, as a deployment
    behind a proxy does with KASSA_FORWARDED_ALLOW_IPS."""
    headers = {"X-Forwarded-For": address}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=30)


def test_order_creation_is_limited_per_key(limited: KassaServer) -> None:
    merchant_id, key = limited.new_merchant()
    with limited.admin() as admin:
        other = admin.post(f"/api/v1/merchants/{merchant_id}/keys", json={"scopes": ["orders:write"]}).json()
    clear_of_window_edge()
    with client(limited, key) as api:
        made = [api.post("/api/v1/orders", json={"amount": 5, "currency": "USD"}) for _ in range(3)]
        assert [r.status_code for r in made] == [201, 201, 201]
        refused = api.post("/api/v1/orders", json={"amount": 5, "currency": "USD"})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "rate_limited"
        assert "3 per 1 minute" in error["message"]
        # Reading is not limited, nor is another key of the same merchant, whatever its address.
        assert api.get("/api/v1/orders").status_code == 200
    with client(limited, other["secret"]) as api:
        assert api.post("/api/v1/orders", json={"amount": 5, "currency": "USD"}).status_code == 201
    # Nothing was created by the refused request: three orders from one key, one from the other.
    with client(limited, key) as api:
        assert len(api.get("/api/v1/orders").json()["data"]) == 4


def test_greenfield_invoices_share_the_limit_and_answer_in_its_shape(limited: KassaServer) -> None:
    merchant_id, key = limited.new_merchant()
    with httpx.Client(base_url=limited.base_url, headers={"Authorization": f"token {key}"}) as shop:
        path = f"/api/v1/stores/{merchant_id}/invoices"
        clear_of_window_edge()
        codes = [shop.post(path, json={"amount": "1.00", "currency": "USD"}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        refused = shop.post(path, json={"amount": "1.00", "currency": "USD"})
        assert refused.status_code == 429 and refused.json()["code"] == "too-many-requests"
        assert int(refused.headers["retry-after"]) >= 1


def test_pages_and_polls_are_limited_per_address(limited: KassaServer) -> None:
    _, key = limited.new_merchant()
    with client(limited, key, "198.51.100.50") as api:
        order = api.post("/api/v1/orders", json={"amount": 5, "currency": "USD"}).json()
    page, poll = f"/pay/{order['id']}", f"/pay/{order['id']}/status"
    clear_of_window_edge()
    with client(limited, address="203.0.113.7") as customer:
        assert [customer.get(page).status_code for _ in range(4)] == [200] * 4
        refused = customer.get(page)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert [customer.get(poll).status_code for _ in range(2)] == [200, 200]  # polls count apart
        assert customer.get(poll).status_code == 429
        assert customer.get("/pay/static/checkout.css").status_code != 429  # static files are not pages
        assert customer.get("/healthz").status_code == 200
    with client(limited, address="203.0.113.8") as neighbour:  # another address has its own count
        assert neighbour.get(page).status_code == 200 and neighbour.get(poll).status_code == 200


def test_limits_are_checked_at_start() -> None:
    with pytest.raises(ConfigError, match="KASSA_RATE_LIMIT_ORDERS"):
        load_settings(rate_limit_orders="lots", secret_key="k" * 40)
    with pytest.raises(ConfigError, match="KASSA_RATE_LIMIT_STORAGE"):
        load_settings(rate_limit_storage="carrier-pigeon://loft", secret_key="k" * 40)
    assert load_settings(rate_limit_pages="", secret_key="k" * 40).rate_limit_pages == ""  # off


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def test_processes_on_one_redis_share_the_counts(
    kassa: KassaServer, redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Two API processes (as behind one proxy) count one key's orders together in Redis; with Redis
    gone, orders pass uncounted and the operator is told, never refused or failed."""
    shared = {"rate_limit_orders": "3/minute", "rate_limit_storage": redis.url}
    a, b = kassa.sibling(**shared).start(), kassa.sibling(**shared).start()
    try:
        _, key = a.new_merchant()
        with client(a, key) as on_a, client(b, key) as on_b:
            order = {"amount": 5, "currency": "USD"}
            clear_of_window_edge()
            codes = [on_a.post("/api/v1/orders", json=order).status_code for _ in range(2)]
            codes += [on_b.post("/api/v1/orders", json=order).status_code for _ in range(2)]
            assert codes == [201, 201, 201, 429]
            assert on_a.post("/api/v1/orders", json=order).status_code == 429
            redis.stop()
            with caplog.at_level(logging.WARNING, logger="kassa.rate_limits"):
                assert on_a.post("/api/v1/orders", json=order).status_code == 201
                assert on_a.post("/api/v1/orders", json=order).status_code == 201
            warnings = [r for r in caplog.records if r.name == "kassa.rate_limits"]
            assert len(warnings) == 1 and "KASSA_RATE_LIMIT_STORAGE" in warnings[0].getMessage()
            assert redis.url not in warnings[0].getMessage()
    finally:
        a.stop()
        b.stop()
