"""`POST /api/v1/orders` through the fast path (api/fast_create.py) answers exactly as the route does.

The fast path serves the requests that create an order and hands every other request to the route.
These tests send one corpus through the app as served (fast path in front) and through the same app
with the fast path taken out (the route alone), and compare the answers; and they check that the
fast path really serves the good requests, so the comparison is not between the route and itself.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from kassa.api.app import create_app
from kassa.api.fast_create import FastOrderCreate
from tests.support.server import ADMIN_TOKEN, KassaServer

GOOD = {"amount": 1050, "currency": "USD", "description": "fast"}

# (body bytes, content type, authorization) -> the route's answer must be the fast path's answer.
CORPUS: list[tuple[bytes, str | None, str | None]] = [
    (b"", "application/json", "KEY"),
    (b"null", "application/json", "KEY"),
    (b"[]", "application/json", "KEY"),
    (b"{}", "application/json", "KEY"),
    (b"{", "application/json", "KEY"),
    (b"\xff\xfe{}", "application/json", "KEY"),
    (b'"text"', "application/json", "KEY"),
    (b'{"amount": "1050", "currency": "USD"}', "application/json", "KEY"),
    (b'{"amount": 10.5, "currency": "USD"}', "application/json", "KEY"),
    (b'{"amount": -1, "currency": "USD"}', "application/json", "KEY"),
    (b'{"amount": 1050, "currency": "XXXX"}', "application/json", "KEY"),
    (b'{"amount": 1050, "currency": "usd", "extra": 1}', "application/json", "KEY"),
    (b'{"amount": 1050, "currency": "USD", "cart": []}', "application/json", "KEY"),
    (b'{"amount": 1, "currency": "USD", "cart": [{"name": "a", "price": 2}]}', "application/json", "KEY"),
    (b'{"amount": 1050, "currency": "USD", "payment_methods": ["nope"]}', "application/json", "KEY"),
    (b'{"amount": 1050, "currency": "USD", "expires_in": 0}', "application/json", "KEY"),
    (b'{"amount": 1050, "currency": "USD", "success_url": "ftp://x"}', "application/json", "KEY"),
    (json.dumps(GOOD).encode(), "application/json", None),
    (json.dumps(GOOD).encode(), "application/json", "Basic dXNlcjpwYXNz"),
    (json.dumps(GOOD).encode(), "application/json", "Bearer"),
    (json.dumps(GOOD).encode(), "application/json", "Bearer ksk_not-a-real-key"),
    (json.dumps(GOOD).encode(), "application/json", f"Bearer {ADMIN_TOKEN}"),
    (json.dumps(GOOD).encode(), "application/json", "READONLY"),
    (json.dumps(GOOD).encode(), "application/vnd.kassa+json", "KEY"),
    (json.dumps(GOOD).encode(), "application/json; charset=utf-8", "KEY"),
    (json.dumps(GOOD).encode(), "text/plain", "KEY"),
    (json.dumps(GOOD).encode(), None, "KEY"),
    (json.dumps({**GOOD, "amount": 2**256}).encode(), "application/json", "KEY"),
    (json.dumps({**GOOD, "currency": "JPY", "amount": 10}).encode(), "application/json", "KEY"),
]


def _headers(content_type: str | None, auth: str | None, key: str, readonly: str) -> dict[str, str]:
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    if auth == "KEY":
        headers["Authorization"] = f"Bearer {key}"
    elif auth == "READONLY":
        headers["Authorization"] = f"Bearer {readonly}"
    elif auth is not None:
        headers["Authorization"] = auth
    return headers


def _comparable(response: httpx.Response) -> tuple[int, Any, dict[str, str | None]]:
    """Status, body and the headers that matter, with what differs between two orders blanked out."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict) and body.get("object") == "order":
        body = json.loads(response.text.replace(body["id"], "ord_x"))  # also in addresses and URIs
        body = {k: v for k, v in body.items() if k not in ("id", "checkout_url", "created_at", "updated_at")}
        body["expires_at"] = body["expires_at"] is not None
        body["h_contract"] = len(body["h_contract"]) == 103  # per order; see the test below
        for method in body["payment_methods"]:
            method["expires_at"] = method["expires_at"] is not None
    names = ("content-type", "www-authenticate")
    headers: dict[str, str | None] = {name: response.headers.get(name) for name in names}
    headers["etag"] = str(response.headers.get("etag") is not None)
    headers["location"] = str(response.headers.get("location", "").startswith("/api/v1/orders/ord_"))
    return response.status_code, body, headers


def _route_only(kassa: KassaServer) -> Any:
    """The same app as served, minus the fast path: what the route alone answers."""
    app = create_app(kassa.runtime, run_worker=False)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not FastOrderCreate]
    return app


async def _send_all(app: Any, requests: list[tuple[bytes, dict[str, str]]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kassa") as client:
        return [await client.post("/api/v1/orders", content=body, headers=h) for body, h in requests]


def test_the_fast_path_answers_as_the_route_does(kassa: KassaServer, merchant: tuple[str, str]) -> None:
    readonly = httpx.post(
        f"{kassa.base_url}/api/v1/merchants/{merchant[0]}/keys",
        json={"scopes": ["orders:read"]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    readonly.raise_for_status()
    requests = [
        (body, _headers(ctype, auth, merchant[1], readonly.json()["secret"])) for body, ctype, auth in CORPUS
    ]
    served = kassa.call(_send_all(kassa.app, requests))
    route = kassa.call(_send_all(_route_only(kassa), requests))
    for (body, headers), fast, slow in zip(requests, served, route, strict=True):
        assert _comparable(fast) == _comparable(slow), (body, headers)
    statuses = {r.status_code for r in served}
    assert {201, 400, 401, 403, 415} <= statuses  # the corpus reaches every kind of answer


def test_repeats_by_order_id_answer_alike(kassa: KassaServer, merchant: tuple[str, str]) -> None:
    headers = {"Authorization": f"Bearer {merchant[1]}", "Content-Type": "application/json"}
    first = json.dumps({**GOOD, "order_id": "same-1"}).encode()
    changed = json.dumps({**GOOD, "order_id": "same-1", "amount": 99}).encode()
    served = kassa.call(_send_all(kassa.app, [(first, headers), (first, headers), (changed, headers)]))
    route = kassa.call(_send_all(_route_only(kassa), [(first, headers), (changed, headers)]))
    assert [r.status_code for r in served] == [201, 200, 409]
    assert [r.status_code for r in route] == [200, 409]
    assert served[1].json() == served[0].json() == route[0].json()
    assert served[2].json() == route[1].json()


def test_both_paths_answer_the_contract_hash_a_read_answers(
    kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {merchant[1]}", "Content-Type": "application/json"}
    body = json.dumps(
        {**GOOD, "cart": [{"name": "ü", "price": 1050}], "fulfillment_url": "https://x.example/a"}
    )
    served = kassa.call(_send_all(kassa.app, [(body.encode(), headers)]))[0]
    route = kassa.call(_send_all(_route_only(kassa), [(body.encode(), headers)]))[0]
    for created in (served, route):
        assert created.status_code == 201
        order = created.json()
        read = httpx.get(f"{kassa.base_url}/api/v1/orders/{order['id']}", headers=headers).json()
        assert read["h_contract"] == order["h_contract"]
    assert served.json()["h_contract"] != route.json()["h_contract"]  # two orders, two hashes


def test_good_requests_never_reach_the_route(kassa: KassaServer, merchant: tuple[str, str]) -> None:
    reached: list[str] = []

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        reached.append(message.get("body", b"").decode())
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    fast = FastOrderCreate(route, kassa.runtime)
    key = {"Authorization": f"Bearer {merchant[1]}"}
    good = kassa.call(
        _send_all(fast, [(json.dumps(GOOD).encode(), {**key, "Content-Type": "application/json"})])
    )
    assert good[0].status_code == 201 and good[0].json()["amount"] == 1050
    assert reached == []
    bad = kassa.call(_send_all(fast, [(b'{"amount": "x"}', {**key, "Content-Type": "application/json"})]))
    assert bad[0].status_code == 418
    assert reached == ['{"amount": "x"}']  # handed on with its body intact


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_other_methods_are_the_routes(kassa: KassaServer, merchant: tuple[str, str], method: str) -> None:
    response = httpx.request(
        method, f"{kassa.base_url}/api/v1/orders", headers={"Authorization": f"Bearer {merchant[1]}"}
    )
    assert response.status_code == (200 if method == "GET" else 405)
