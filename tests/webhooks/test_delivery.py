"""Webhook endpoints and deliveries through the public API, with a real signature-checking receiver."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.support.receiver import Receiver
from tests.support.server import KassaServer


def endpoint(api: httpx.Client, receiver: Receiver, path: str = "/hook", **body: Any) -> dict[str, Any]:
    r = api.post("/api/v1/webhook-endpoints", json={"url": receiver.url + path, **body})
    assert r.status_code == 201, r.text
    ep = r.json()
    assert ep["secret"].startswith("whsec_")
    receiver.secrets[path] = [ep["secret"]]
    return ep


def paid_order(api: httpx.Client, **body: Any) -> dict[str, Any]:
    order = api.post(
        "/api/v1/orders", json={"amount": 500, "currency": "EUR", "confirmations": 0, **body}
    ).json()
    api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 500})
    return order


def test_endpoint_crud_and_secret_shown_once(api: httpx.Client, receiver: Receiver) -> None:
    ep = endpoint(api, receiver, event_types=["order.paid"], description="shop")
    listed = api.get("/api/v1/webhook-endpoints").json()["data"]
    assert [e["id"] for e in listed] == [ep["id"]] and "secret" not in listed[0]
    r = api.patch(f"/api/v1/webhook-endpoints/{ep['id']}", json={"event_types": ["*"], "enabled": False})
    assert r.json()["event_types"] == ["*"] and r.json()["enabled"] is False
    for bad in (
        {"url": "ftp://x.example/h"},
        {"url": receiver.url, "event_types": ["order.nope"]},
        {"url": receiver.url, "event_types": []},
    ):
        r = api.post("/api/v1/webhook-endpoints", json=bad)
        assert r.status_code == 400, r.text
    assert api.delete(f"/api/v1/webhook-endpoints/{ep['id']}").status_code == 204
    assert api.get(f"/api/v1/webhook-endpoints/{ep['id']}").status_code == 404


def test_signed_in_sequence_and_filtered(api: httpx.Client, kassa: KassaServer, receiver: Receiver) -> None:
    endpoint(api, receiver, "/all")
    endpoint(api, receiver, "/paid", event_types=["order.paid"])
    order = paid_order(api)
    kassa.deliver()
    got = receiver.on("/all")
    assert all(r.verified for r in receiver.received)
    assert [r.body["type"] for r in got] == [
        "order.created",
        "payment.received",
        "payment.confirmed",
        "order.processing",
        "order.paid",
    ]
    assert [r.body["sequence"] for r in got] == [1, 2, 3, 4, 5]
    assert {r.body["order"] for r in got} == {order["id"]}
    assert got[-1].body["data"]["status"] == "paid" and got[-1].body["test"] is True
    assert [r.body["type"] for r in receiver.on("/paid")] == ["order.paid"]
    assert got[-1].webhook_id == got[-1].body["id"]  # webhook-id is the event id


def test_events_api(api: httpx.Client, kassa: KassaServer) -> None:
    order = paid_order(api)
    events = api.get("/api/v1/events", params={"order": order["id"], "limit": 100}).json()["data"]
    assert [e["sequence"] for e in events] == [5, 4, 3, 2, 1]
    paid = api.get("/api/v1/events", params={"type": "order.paid"}).json()["data"]
    assert len(paid) == 1 and paid[0]["data"]["status"] == "paid"
    one = api.get(f"/api/v1/events/{paid[0]['id']}").json()
    assert one == paid[0]
    _, other = kassa.new_merchant()
    r = httpx.get(
        f"{kassa.base_url}/api/v1/events/{paid[0]['id']}", headers={"Authorization": f"Bearer {other}"}
    )
    assert r.status_code == 404


def test_retries_follow_the_schedule(api: httpx.Client, kassa: KassaServer, receiver: Receiver) -> None:
    ep = endpoint(api, receiver, event_types=["order.created"])
    receiver.status = 500
    api.post("/api/v1/orders", json={"amount": 5, "currency": "EUR"})
    kassa.deliver()
    assert len(receiver.received) == 1
    log = api.get(f"/api/v1/webhook-endpoints/{ep['id']}/deliveries").json()["data"][0]
    assert log["status"] == "pending" and log["attempts"][0]["status_code"] == 500
    expected = [5, 300, 1800, 7200]
    for i, delay in enumerate(expected, start=2):
        due = datetime.fromisoformat(log["next_attempt_at"])
        last = datetime.fromisoformat(log["attempts"][-1]["attempted_at"])
        assert timedelta(seconds=delay * 0.89) <= due - last <= timedelta(seconds=delay * 1.11)
        # The test clock is real time plus an offset: keep a wide margin against a slow machine.
        kassa.clock.advance((due - kassa.clock.now()).total_seconds() - 30)
        kassa.deliver()
        assert len(receiver.received) == i - 1  # not yet due
        kassa.clock.advance(30.5)
        kassa.deliver()
        assert len(receiver.received) == i
        log = api.get(f"/api/v1/webhook-endpoints/{ep['id']}/deliveries").json()["data"][0]
    receiver.status = 200
    kassa.clock.advance(5 * 3600 * 1.2)
    kassa.deliver()
    log = api.get(f"/api/v1/webhook-endpoints/{ep['id']}/deliveries").json()["data"][0]
    assert log["status"] == "succeeded" and len(log["attempts"]) == 6
    assert len({r.webhook_id for r in receiver.received}) == 1  # the same message each time


def test_retry_after_is_honoured(api: httpx.Client, kassa: KassaServer, receiver: Receiver) -> None:
    ep = endpoint(api, receiver, event_types=["order.created"])
    receiver.status, receiver.headers = 503, {"Retry-After": "120"}
    api.post("/api/v1/orders", json={"amount": 5, "currency": "EUR"})
    kassa.deliver()
    log = api.get(f"/api/v1/webhook-endpoints/{ep['id']}/deliveries").json()["data"][0]
    wait = datetime.fromisoformat(log["next_attempt_at"]) - datetime.fromisoformat(
        log["attempts"][0]["attempted_at"]
    )
    assert wait >= timedelta(seconds=120)


def test_410_disables_and_tells_the_merchant(kassa: KassaServer, receiver: Receiver) -> None:
    _, key = kassa.new_merchant(email="owner@shop.example")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as api:
        ep = endpoint(api, receiver)
        receiver.status = 410
        api.post("/api/v1/orders", json={"amount": 5, "currency": "EUR"})
        kassa.deliver()
        after = api.get(f"/api/v1/webhook-endpoints/{ep['id']}").json()
        assert after["enabled"] is False and "410" in after["disabled_reason"]
        kassa.send_emails()
        mail = [m for m in kassa.mailer.messages if m.to == "owner@shop.example"]
        assert mail and ep["url"] in mail[-1].text
        # Events after that are not sent to it.
        receiver.status = 200
        api.post("/api/v1/orders", json={"amount": 6, "currency": "EUR"})
        kassa.deliver()
        assert len(receiver.received) == 1


def test_failing_for_days_disables(kassa: KassaServer, receiver: Receiver) -> None:
    _, key = kassa.new_merchant()
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as api:
        ep = endpoint(api, receiver, event_types=["order.created"])
        receiver.status = 500
        api.post("/api/v1/orders", json={"amount": 5, "currency": "EUR"})
        for _ in range(12):
            kassa.deliver()
            kassa.clock.advance(26 * 3600)
        after = api.get(f"/api/v1/webhook-endpoints/{ep['id']}").json()
        assert after["enabled"] is False and "failed for" in after["disabled_reason"]
        assert (
            api.patch(f"/api/v1/webhook-endpoints/{ep['id']}", json={"enabled": True}).json()["failing_since"]
            is None
        )


def test_redeliver_keeps_the_webhook_id(api: httpx.Client, kassa: KassaServer, receiver: Receiver) -> None:
    ep = endpoint(api, receiver, event_types=["order.created"])
    api.post("/api/v1/orders", json={"amount": 5, "currency": "EUR"})
    kassa.deliver()
    event = api.get("/api/v1/events", params={"type": "order.created"}).json()["data"][0]
    r = api.post(f"/api/v1/events/{event['id']}/redeliver", json={"endpoint": ep["id"]})
    assert r.status_code == 202 and len(r.json()["data"]) == 1
    kassa.deliver()
    assert [x.webhook_id for x in receiver.received] == [event["id"], event["id"]]
    assert api.post("/api/v1/events/evt_nope/redeliver").status_code == 404


def test_secret_rotation_overlap(api: httpx.Client, kassa: KassaServer, receiver: Receiver) -> None:
    ep = endpoint(api, receiver, event_types=["order.created"])
    old = ep["secret"]
    rotated = api.post(
        f"/api/v1/webhook-endpoints/{ep['id']}/rotate-secret", json={"overlap_seconds": 3600}
    ).json()
    new = rotated["secret"]
    assert new != old
    receiver.secrets["/hook"] = [old]  # a receiver that has not switched yet still verifies
    api.post("/api/v1/orders", json={"amount": 5, "currency": "EUR"})
    kassa.deliver()
    receiver.secrets["/hook"] = [new]  # and one that has switched, too
    api.post("/api/v1/orders", json={"amount": 6, "currency": "EUR"})
    kassa.deliver()
    assert [r.verified for r in receiver.received] == [True, True]
    kassa.clock.advance(3601)  # after the overlap only the new secret signs
    receiver.secrets["/hook"] = [old]
    api.post("/api/v1/orders", json={"amount": 7, "currency": "EUR"})
    kassa.deliver()
    assert receiver.received[-1].verified is False


def test_callback_url_gets_the_orders_events(
    api: httpx.Client, kassa: KassaServer, receiver: Receiver
) -> None:
    secret = api.post("/api/v1/merchant/callback-secret").json()["secret"]
    receiver.secrets["/cb"] = [secret]
    paid_order(api, callback_url=receiver.url + "/cb")
    kassa.deliver()
    got = receiver.on("/cb")
    assert [r.body["type"] for r in got][-1] == "order.paid"
    assert all(r.verified for r in got) and len(got) == 5


def test_slow_endpoint_does_not_hold_up_others(kassa: KassaServer) -> None:
    slow, fast = Receiver(delay=1.0).start(), Receiver().start()
    try:
        _, key_a = kassa.new_merchant()
        _, key_b = kassa.new_merchant()
        with (
            httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key_a}"}) as a,
            httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key_b}"}) as b,
        ):
            endpoint(a, slow, event_types=["order.created"])
            endpoint(b, fast, event_types=["order.created"])
            for i in range(12):
                a.post("/api/v1/orders", json={"amount": 5 + i, "currency": "EUR"})
            for i in range(12):
                b.post("/api/v1/orders", json={"amount": 5 + i, "currency": "EUR"})
            kassa.deliver()
        assert len(fast.received) == 12 and len(slow.received) == 12
        # The fast endpoint was served while the slow one was still being worked through.
        assert max(r.at for r in fast.received) < max(r.at for r in slow.received) - 1.5
    finally:
        slow.stop()
        fast.stop()


def test_private_targets_refused_by_default(kassa: KassaServer, receiver: Receiver) -> None:
    from kassa.notify.outbound import OutboundPools
    from kassa.worker.deliveries import DeliveryWorker

    _, key = kassa.new_merchant()
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as api:
        ep = endpoint(api, receiver, event_types=["order.created"])
        api.post("/api/v1/orders", json={"amount": 5, "currency": "EUR"})
        strict = kassa.runtime.settings.model_copy(update={"allow_private_webhooks": False})
        runtime = kassa.runtime
        original = runtime.settings
        worker = DeliveryWorker(runtime, OutboundPools(runtime.settings.webhook_per_target))
        try:
            runtime.settings = strict
            kassa.call(worker.drain())
        finally:
            runtime.settings = original
        log = api.get(f"/api/v1/webhook-endpoints/{ep['id']}/deliveries").json()["data"][0]
        assert receiver.received == []
        assert "refused" in log["attempts"][0]["error"]
