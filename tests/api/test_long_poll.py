"""Long polling: `timeout_ms` waits for a change; `If-None-Match` gives 304 when nothing changed."""

from __future__ import annotations

import threading
import time

import httpx

from tests.support.server import KassaServer


def test_etag_and_304(api: httpx.Client) -> None:
    order = api.post("/api/v1/orders", json={"amount": 10, "currency": "USD"}).json()
    r = api.get(f"/api/v1/orders/{order['id']}")
    tag = r.headers["etag"]
    assert tag == f'"{order["id"]}.{order["version"]}"'
    r = api.get(f"/api/v1/orders/{order['id']}", headers={"If-None-Match": tag})
    assert r.status_code == 304 and r.content == b""
    start = time.monotonic()
    r = api.get(f"/api/v1/orders/{order['id']}", params={"timeout_ms": 300}, headers={"If-None-Match": tag})
    assert r.status_code == 304 and time.monotonic() - start >= 0.28


def test_long_poll_wakes_within_100ms(
    api: httpx.Client, kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    order = api.post("/api/v1/orders", json={"amount": 10, "currency": "USD"}).json()
    tag = api.get(f"/api/v1/orders/{order['id']}").headers["etag"]
    woke: dict[str, float] = {}

    def poll() -> None:
        with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {merchant[1]}"}) as c:
            r = c.get(
                f"/api/v1/orders/{order['id']}", params={"timeout_ms": 10_000}, headers={"If-None-Match": tag}
            )
            woke["at"] = time.monotonic()
            woke["status"] = r.status_code
            woke["order"] = r.json()["status"]  # type: ignore[assignment]

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)  # the poller is waiting now
    assert kassa.runtime.hub.waiting >= 1
    paid_at = time.monotonic()
    api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 10})
    changed_at = time.monotonic()
    thread.join(5)
    assert woke["status"] == 200 and woke["order"] == "processing"
    assert woke["at"] - changed_at < 0.1, f"woke {woke['at'] - changed_at:.3f}s after the change"
    assert woke["at"] >= paid_at


def test_stale_etag_answers_at_once(api: httpx.Client) -> None:
    order = api.post("/api/v1/orders", json={"amount": 10, "currency": "USD"}).json()
    start = time.monotonic()
    r = api.get(
        f"/api/v1/orders/{order['id']}", params={"timeout_ms": 5000}, headers={"If-None-Match": '"old"'}
    )
    assert r.status_code == 200 and time.monotonic() - start < 1


def test_bad_timeout(api: httpx.Client) -> None:
    order = api.post("/api/v1/orders", json={"amount": 10, "currency": "USD"}).json()
    for value in ("-1", "abc", "600001", "1.5"):
        r = api.get(f"/api/v1/orders/{order['id']}", params={"timeout_ms": value})
        assert r.status_code == 400 and r.json()["error"]["param"] == "timeout_ms", value
