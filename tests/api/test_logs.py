"""Request logs are structured and never carry secrets."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.support.server import KassaServer


def test_request_log_lines(
    api: httpx.Client, kassa: KassaServer, merchant: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    from kassa.api.middleware import RequestLogMiddleware

    # The suite's server runs with access logs off; switch them on for this test.
    middleware = kassa.app.middleware_stack
    while middleware is not None and not isinstance(middleware, RequestLogMiddleware):
        middleware = getattr(middleware, "app", None)
    assert middleware is not None
    middleware.enabled = True
    try:
        with caplog.at_level(logging.INFO, logger="kassa.access"):
            api.post(
                "/api/v1/orders",
                json={"amount": 5, "currency": "USD", "email": "secret-customer@example.com"},
                headers={"X-Request-Id": "req-123"},
            )
            api.get("/api/v1/orders", params={"order_id": "private-ref"})
    finally:
        middleware.enabled = False
    records = [r for r in caplog.records if r.name == "kassa.access"]
    lines = [r.__dict__ for r in records]
    assert lines[0]["method"] == "POST" and lines[0]["path"] == "/api/v1/orders" and lines[0]["status"] == 201
    assert lines[0]["route"] == "/api/v1/orders" and lines[0]["duration_ms"] >= 0
    assert records[0].getMessage().startswith("POST /api/v1/orders 201 ")
    text = caplog.text
    assert merchant[1] not in text and "secret-customer" not in text and "private-ref" not in text
