"""Idempotency-Key on POST, and the merchant's order_id as a natural idempotency key."""

from __future__ import annotations

import threading

import httpx

from tests.support.server import KassaServer


def test_replay_returns_first_answer(api: httpx.Client) -> None:
    body = {"amount": 700, "currency": "EUR"}
    first = api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "k1"})
    second = api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert len(api.get("/api/v1/orders").json()["data"]) == 1


def test_different_body_same_key_is_422(api: httpx.Client) -> None:
    api.post("/api/v1/orders", json={"amount": 700, "currency": "EUR"}, headers={"Idempotency-Key": "k2"})
    r = api.post("/api/v1/orders", json={"amount": 701, "currency": "EUR"}, headers={"Idempotency-Key": "k2"})
    assert r.status_code == 422
    assert (
        r.json()["error"]["type"] == "idempotency_error" and r.json()["error"]["param"] == "Idempotency-Key"
    )


def test_keys_are_per_credential(kassa: KassaServer, api: httpx.Client) -> None:
    _, other = kassa.new_merchant()
    body = {"amount": 700, "currency": "EUR"}
    a = api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "shared"})
    b = httpx.post(
        f"{kassa.base_url}/api/v1/orders",
        json=body,
        headers={"Idempotency-Key": "shared", "Authorization": f"Bearer {other}"},
    )
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


def test_errors_are_replayed_too(api: httpx.Client) -> None:
    body = {"amount": 700, "currency": "EUR", "payment_methods": ["nope"]}
    first = api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "k3"})
    second = api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "k3"})
    assert first.status_code == second.status_code == 400 and first.json() == second.json()


def test_test_payment_replay_does_not_pay_twice(api: httpx.Client) -> None:
    order = api.post("/api/v1/orders", json={"amount": 700, "currency": "EUR"}).json()
    for _ in range(3):
        r = api.post(
            "/api/v1/test/payments",
            json={"order": order["id"], "amount": 300},
            headers={"Idempotency-Key": "pay-once"},
        )
        assert r.status_code == 201
    assert api.get(f"/api/v1/orders/{order['id']}").json()["amount_received"] == 300


def test_concurrent_duplicate_is_409_or_replay(
    api: httpx.Client, kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    results: list[int] = []
    body = {"amount": 700, "currency": "EUR"}

    def send() -> None:
        with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {merchant[1]}"}) as c:
            results.append(
                c.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "race"}).status_code
            )

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) <= {201, 409} and 201 in results
    assert len(api.get("/api/v1/orders").json()["data"]) == 1


def test_bad_idempotency_key(api: httpx.Client) -> None:
    r = api.post(
        "/api/v1/orders", json={"amount": 1, "currency": "EUR"}, headers={"Idempotency-Key": "x" * 256}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "Idempotency-Key"


def test_order_id_same_body_returns_existing(api: httpx.Client) -> None:
    body = {"amount": 700, "currency": "EUR", "order_id": "inv-9"}
    first = api.post("/api/v1/orders", json=body)
    again = api.post("/api/v1/orders", json=body)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    clash = api.post("/api/v1/orders", json={**body, "amount": 701})
    assert clash.status_code == 409
    assert clash.json()["error"] == {
        "type": "invalid_request_error",
        "code": "order_id_conflict",
        "param": "order_id",
        "message": "an order with order_id 'inv-9' already exists with different details",
    }
