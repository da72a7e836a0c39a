"""What an operator watches: request ids, structured logs without secrets, /metrics, /readyz."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kassa.api.app import create_app
from kassa.config import load_settings
from kassa.db.migrate import head_revisions, upgrade
from kassa.logs import configure_logging
from kassa.runtime import build_runtime
from kassa.services.views import iso
from tests.support.server import KassaServer

METRICS_TOKEN = "metrics-token-for-the-tests"


@pytest.fixture(scope="module")
def watched(kassa: KassaServer) -> Iterator[KassaServer]:
    """A server on the suite's database with /metrics switched on."""
    server = kassa.sibling(metrics_token=METRICS_TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log record of the process, at DEBUG, as the JSON lines `KASSA_LOG_FORMAT=json` writes."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("debug", "json", stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_every_answer_has_a_request_id(anon: httpx.Client, api: httpx.Client) -> None:
    ids = {anon.get("/healthz").headers["x-request-id"], anon.get("/no/such/page").headers["x-request-id"]}
    ids.add(api.post("/api/v1/orders", json={"amount": 5, "currency": "USD"}).headers["x-request-id"])
    assert len(ids) == 3 and all(len(i) == 16 for i in ids)
    assert (
        anon.get("/healthz", headers={"X-Request-Id": "trace-7f3:a.b"}).headers["x-request-id"]
        == "trace-7f3:a.b"
    )
    # An id that could forge a log line or bloat it is replaced, not echoed.
    for bad in ("two words", "x" * 65, "a\tb"):
        given = anon.get("/healthz", headers={"X-Request-Id": bad}).headers["x-request-id"]
        assert given != bad and len(given) == 16


def test_json_log_lines_carry_the_request_id_and_no_secret(
    kassa: KassaServer, captured: io.StringIO, tmp_path: Path
) -> None:
    """Everything an operator or merchant hands Kassa that is secret, at DEBUG, in JSON logs: none of it
    is written, and every line written during a request names that request."""
    from kassa.api.middleware import RequestLogMiddleware

    middleware = kassa.app.middleware_stack
    while middleware is not None and not isinstance(middleware, RequestLogMiddleware):
        middleware = getattr(middleware, "app", None)
    assert middleware is not None
    middleware.enabled = True
    merchant_id, key = kassa.new_merchant()
    try:
        with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as api:
            rpc_password = "wallet-rpc-password-d41d8cd98f00"
            put = api.put(
                "/api/v1/payment-methods/monero",
                json={
                    "wallet_rpc_url": "http://127.0.0.1:9/json_rpc",
                    "username": "u",
                    "password": rpc_password,
                },
                headers={"X-Request-Id": "req-monero"},
            )
            assert put.status_code == 200, put.text
            api.post("/api/v1/payment-methods/monero/check")  # fails to connect: logged, without the password
            hook = api.post("/api/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"}).json()
            order = api.post(
                "/api/v1/orders",
                json={"amount": 5, "currency": "USD", "email": "buyer-secret@example.com"},
                headers={"X-Request-Id": "req-order"},
            ).json()
            api.get(f"/api/v1/orders/{order['id']}", params={"order_id": "private-ref"})
        with kassa.admin() as admin:
            new_key = admin.post(
                f"/api/v1/merchants/{merchant_id}/keys", json={"scopes": ["orders:read"]}
            ).json()
        kassa.deliver()
    finally:
        middleware.enabled = False
    text = captured.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    requests = {line["request_id"]: line for line in lines if line.get("event") == "request"}
    assert requests["req-order"]["route"] == "/api/v1/orders" and requests["req-order"]["status"] == 201
    assert requests["req-monero"]["route"] == "/api/v1/payment-methods/{rail}"
    assert {"time", "level", "logger", "message"} <= set(requests["req-order"])
    for secret in (key, rpc_password, hook["secret"], new_key["secret"], "buyer-secret", "private-ref"):
        assert secret not in text
    assert kassa.settings.admin_token is not None and kassa.settings.admin_token not in text
    assert kassa.runtime.settings.resolved_secret_key() not in text


def test_metrics_need_their_token(kassa: KassaServer, watched: KassaServer) -> None:
    assert httpx.get(f"{kassa.base_url}/metrics").status_code == 404  # no token configured: off
    for given in (None, "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x"):
        headers = {"Authorization": given} if given else {}
        r = httpx.get(f"{watched.base_url}/metrics", headers=headers)
        assert r.status_code == 401 and "KASSA_METRICS_TOKEN" in r.json()["error"]["message"]


def test_metrics_count_requests_orders_and_deliveries(watched: KassaServer) -> None:
    merchant_id, key = watched.new_merchant()
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        r = httpx.get(f"{watched.base_url}/metrics", headers=auth)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        return samples(r.text)

    created = (
        "kassa_http_requests_total",
        (("method", "POST"), ("route", "/api/v1/orders"), ("status", "201")),
    )
    read = (
        "kassa_http_requests_total",
        (("method", "GET"), ("route", "/api/v1/orders/{order}"), ("status", "200")),
    )
    before = scrape()
    with httpx.Client(base_url=watched.base_url, headers={"Authorization": f"Bearer {key}"}) as api:
        api.post("/api/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"}).raise_for_status()
        ids = [
            api.post("/api/v1/orders", json={"amount": 5, "currency": "USD"}).json()["id"] for _ in range(3)
        ]
        api.get(f"/api/v1/orders/{ids[0]}").raise_for_status()
        api.post("/api/v1/test/payments", json={"order": ids[0], "amount": 5}).raise_for_status()
    # The dashboard is mounted at /dashboard: its routes count under their whole template.
    assert httpx.get(f"{watched.base_url}/dashboard/orders/{ids[0]}").status_code == 303  # to sign in
    page = (
        "kassa_http_requests_total",
        (("method", "GET"), ("route", "/dashboard/orders/{order_id}"), ("status", "303")),
    )
    after = scrape()
    assert after[page] - before.get(page, 0) == 1
    assert after[created] - before.get(created, 0) == 3
    assert after[read] - before.get(read, 0) == 1
    count = ("kassa_http_request_duration_seconds_count", (("route", "/api/v1/orders"),))
    assert after[count] - before.get(count, 0) == 3
    # Orders by status and undelivered webhooks: the database's own counts.
    open_now = after[("kassa_orders", (("status", "open"),))]
    assert open_now - before[("kassa_orders", (("status", "open"),))] >= 2  # other tests run alongside
    assert ("kassa_orders", (("status", "canceled"),)) in after  # every status, zero included
    assert after[("kassa_webhook_deliveries", (("state", "pending"),))] >= 2  # created and paid, not sent


def test_metrics_show_watcher_lag_and_rate_age(watched: KassaServer) -> None:
    runtime = watched.runtime
    now = runtime.clock.now()
    runtime.watcher_health["mer_lagging/monero"] = {
        "ok": True,
        "at": iso(now),
        "last_pass": iso(now - timedelta(seconds=42)),
    }
    runtime.watcher_health["mer_failing/bitcoin"] = {"ok": False, "at": iso(now), "error": "refused"}
    try:
        got = samples(
            httpx.get(
                f"{watched.base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            ).text
        )
    finally:
        runtime.watcher_health.pop("mer_lagging/monero")
        runtime.watcher_health.pop("mer_failing/bitcoin")
    lag = got[("kassa_watcher_lag_seconds", (("merchant", "mer_lagging"), ("rail", "monero")))]
    assert 42 <= lag < 60
    assert got[("kassa_watcher_up", (("merchant", "mer_lagging"), ("rail", "monero")))] == 1
    assert got[("kassa_watcher_up", (("merchant", "mer_failing"), ("rail", "bitcoin")))] == 0


def test_readyz_checks_the_migrations(anon: httpx.Client, tmp_path: Path) -> None:
    r = anon.get("/readyz")
    assert r.status_code == 200 and r.json()["details"]["migrations"] == "current"
    behind = f"sqlite+aiosqlite:///{tmp_path / 'behind.db'}"
    upgrade(behind, "0011")
    settings = load_settings(database_url=behind, secret_key="k" * 40)
    app = create_app(build_runtime(settings), run_worker=False)

    async def ask() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://kassa"
        ) as client:
            return await client.get("/readyz")

    import asyncio

    r = asyncio.run(ask())
    assert r.status_code == 503 and r.json()["status"] == "unavailable"
    assert (
        "0011" in r.json()["details"]["migrations"]
        and sorted(head_revisions())[0] in r.json()["details"]["migrations"]
    )
