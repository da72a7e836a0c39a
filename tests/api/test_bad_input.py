"""Every malformed request is a 4xx in the one error shape, naming the offending param."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

CASES: list[tuple[dict[str, Any], str | None, str]] = [
    ({"amount": "10", "currency": "USD"}, "amount", "parameter_invalid"),
    ({"amount": 10.5, "currency": "USD"}, "amount", "parameter_invalid"),
    ({"amount": -1, "currency": "USD"}, "amount", "parameter_invalid"),
    ({"amount": 0, "currency": "USD"}, "amount", "parameter_invalid"),
    ({"amount": 2**256, "currency": "ETH"}, "amount", "parameter_invalid"),
    ({"amount": 10, "currency": "XYZ"}, "currency", "parameter_invalid"),
    ({"amount": 10}, "currency", "parameter_missing"),
    ({"currency": "USD"}, "amount", "parameter_invalid"),
    ({"amount": 10, "currency": "USD", "colour": "red"}, "colour", "parameter_unknown"),
    ({"currency": "USD", "cart": []}, "cart", "parameter_invalid"),
    ({"currency": "USD", "cart": [{"name": "x", "price": 1.5}]}, "cart[0].price", "parameter_invalid"),
    (
        {"currency": "USD", "cart": [{"name": "x", "price": 1, "quantity": 0}]},
        "cart[0].quantity",
        "parameter_invalid",
    ),
    (
        {"currency": "USD", "cart": [{"name": "x", "price": 1, "bogus": 1}]},
        "cart[0].bogus",
        "parameter_unknown",
    ),
    (
        {"currency": "ETH", "cart": [{"name": "x", "price": 2**255, "quantity": 2}]},
        "cart[0]",
        "parameter_invalid",
    ),
    ({"amount": 5, "currency": "USD", "cart": [{"name": "x", "price": 1}]}, "amount", "parameter_invalid"),
    (
        {"amount": 5, "currency": "USD", "success_url": "javascript:alert(1)"},
        "success_url",
        "parameter_invalid",
    ),
    ({"amount": 5, "currency": "USD", "email": "not-an-email"}, "email", "parameter_invalid"),
    ({"amount": 5, "currency": "USD", "expires_in": 0}, "expires_in", "parameter_invalid"),
    ({"amount": 5, "currency": "USD", "confirmations": -1}, "confirmations", "parameter_invalid"),
    ({"amount": 5, "currency": "USD", "payment_methods": []}, "payment_methods", "parameter_invalid"),
    ({"amount": 5, "currency": "USD", "payment_methods": ["BTC"]}, "payment_methods", "parameter_invalid"),
    ({"amount": 5, "currency": "USD", "order_id": ""}, "order_id", "parameter_invalid"),
]


@pytest.mark.parametrize(("body", "param", "code"), CASES)
def test_bad_order_bodies(api: httpx.Client, body: dict[str, Any], param: str | None, code: str) -> None:
    r = api.post("/api/v1/orders", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"type", "code", "message", "param"}
    assert (error["param"], error["code"]) == (param, code), error
    assert error["type"] == "invalid_request_error" and error["message"]


def test_not_json(api: httpx.Client) -> None:
    r = api.post("/api/v1/orders", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "body_invalid"
    r = api.post("/api/v1/orders", json=[1, 2])
    assert r.status_code == 400 and r.json()["error"]["code"] == "body_invalid"


def test_wrong_content_type(api: httpx.Client) -> None:
    r = api.post(
        "/api/v1/orders", content=b"amount=5", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415 and r.json()["error"]["param"] == "Content-Type"


def test_body_over_1mb(api: httpx.Client) -> None:
    big = b'{"amount": 5, "currency": "USD", "description": "' + b"x" * 1_100_000 + b'"}'
    r = api.post("/api/v1/orders", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: the limit still holds while streaming
        for _ in range(20):
            yield b"x" * 100_000

    r = api.post("/api/v1/orders", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_unknown_order_and_route(api: httpx.Client) -> None:
    assert api.get("/api/v1/orders/ord_doesnotexist").status_code == 404
    r = api.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.delete("/api/v1/orders")
    assert r.status_code == 405 and "error" in r.json()


def test_bad_list_params(api: httpx.Client) -> None:
    for params, param in [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"status": "nope"}, "status"),
        ({"created_gte": "yesterday"}, "created_gte"),
        ({"starting_after": "ord_x"}, "starting_after"),
    ]:
        r = api.get("/api/v1/orders", params=params)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (params, r.text)


def test_bad_test_rail_bodies(api: httpx.Client) -> None:
    order = api.post("/api/v1/orders", json={"amount": 5, "currency": "USD"}).json()
    for body, param in [
        ({"order": order["id"], "amount": 0}, "amount"),
        ({"order": order["id"]}, "amount"),
        ({"order": "ord_nope", "amount": 1}, "order"),
    ]:
        r = api.post("/api/v1/test/payments", json=body)
        assert r.status_code in (400, 404) and r.json()["error"]["param"] == param, r.text
    r = api.post("/api/v1/test/blocks", json={"count": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "count"


def test_nul_characters_refused(api: httpx.Client) -> None:
    # PostgreSQL cannot store NUL in text: refused up front on both databases, never a 500.
    for response in (
        api.post("/api/v1/orders", json={"amount": 5, "currency": "USD", "description": "a\u0000b"}),
        api.get("/api/v1/orders/abc%00def"),
        api.get("/api/v1/orders", params={"order_id": "a\x00b"}),
    ):
        assert response.status_code == 400, response.text
        assert "NUL" in response.json()["error"]["message"]
