"""Delivery reliability at volume and through an outage, on SQLite and PostgreSQL.

A loopback HTTP receiver (below) verifies every message with the `standardwebhooks` library and
keeps every arrival. It answers through a policy function, so a test can fail chosen messages
(500 after "processing" them: the retry is a real duplicate), fail everything for a while, or hang
longer than the delivery timeout. Time is driven with the server's fake clock, never with sleeps.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kassa.db.tables import deliveries, delivery_attempts, webhook_endpoints
from tests.support.receiver import verify
from tests.support.server import KassaServer

PAID_FLOW = ["order.created", "payment.received", "payment.confirmed", "order.processing", "order.paid"]


# ----- the receiver ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    path: str
    webhook_id: str
    timestamp: str
    raw: bytes
    body: dict[str, Any]
    verified: bool
    seen: int  # 1 for the first arrival of this webhook-id at this path, 2 for the next, ...
    client_port: int  # the sender's local port (tells which process sent it)
    at: float  # time.monotonic() on arrival


Answer = Callable[[Arrival], tuple[int, float]]  # -> (status, seconds to wait before answering)


def always_ok(_arrival: Arrival) -> tuple[int, float]:
    return 200, 0.0


@dataclass
class HookReceiver:
    """A threaded HTTP receiver. `secrets` maps a path to the secrets that may sign for it.

    While `gate` is cleared, requests are read and recorded but not answered; `in_flight` maps the
    sender's port to the webhook-id of each request not answered yet.
    """

    secrets: dict[str, list[str]] = field(default_factory=dict)
    answer: Answer = always_ok
    arrivals: list[Arrival] = field(default_factory=list)
    in_flight: dict[int, str] = field(default_factory=dict)
    copies: Counter[tuple[str, str]] = field(default_factory=Counter)  # (path, webhook-id) -> arrivals
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> HookReceiver:
        receiver = self
        self.gate.set()

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one connection per message, so no pooled connection outlives the receiver.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = verify(receiver.secrets.get(self.path, []), raw, headers)
                msg_id = headers.get("webhook-id", "")
                with receiver.lock:
                    receiver.copies[self.path, msg_id] += 1
                    seen = receiver.copies[self.path, msg_id]
                    arrival = Arrival(
                        self.path,
                        msg_id,
                        headers.get("webhook-timestamp", ""),
                        raw,
                        json.loads(raw),
                        verified,
                        seen,
                        self.client_address[1],
                        time.monotonic(),
                    )
                    receiver.arrivals.append(arrival)
                    receiver.in_flight[arrival.client_port] = msg_id
                    status, delay = receiver.answer(arrival)
                try:
                    if delay:
                        time.sleep(delay)
                    receiver.gate.wait(60)
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up waiting (timeout) or died
                    self.close_connection = True
                finally:
                    with receiver.lock:
                        receiver.in_flight.pop(arrival.client_port, None)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self, path: str | None = None) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if path is None or a.path == path]


@pytest.fixture
def hooks() -> Iterator[HookReceiver]:
    receiver = HookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


# ----- helpers ---------------------------------------------------------------------------------


def register(api: httpx.Client, receiver: HookReceiver, path: str, **body: Any) -> dict[str, Any]:
    r = api.post("/api/v1/webhook-endpoints", json={"url": receiver.url + path, **body})
    assert r.status_code == 201, r.text
    endpoint: dict[str, Any] = r.json()
    receiver.secrets[path] = [endpoint["secret"]]
    return endpoint


def pay_orders(kassa: KassaServer, key: str, count: int, threads: int = 4) -> list[str]:
    """Create `count` test orders and pay each in full (confirmations 0): five events per order."""

    def work(indices: range) -> list[str]:
        ids = []
        with httpx.Client(
            base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            for i in indices:
                r = client.post(
                    "/api/v1/orders",
                    json={"amount": 1000 + i, "currency": "EUR", "confirmations": 0},
                )
                assert r.status_code == 201, r.text
                order = r.json()
                r = client.post("/api/v1/test/payments", json={"order": order["id"], "amount": 1000 + i})
                assert r.status_code == 201, r.text
                assert r.json()["order"]["status"] == "paid"
                ids.append(order["id"])
        return ids

    chunks = [range(start, count, threads) for start in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return [order_id for ids in pool.map(work, chunks) for order_id in ids]


def all_events(api: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = api.get("/api/v1/events", params=params).json()
        found += page["data"]
        if not page["has_more"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]


def endpoint_deliveries(kassa: KassaServer, endpoint_id: str) -> list[dict[str, Any]]:
    """Every delivery to the endpoint with its attempt times, straight from the tables."""

    async def load() -> list[dict[str, Any]]:
        async with kassa.runtime.db.read() as conn:
            rows = (
                await conn.execute(
                    select(deliveries)
                    .join(webhook_endpoints, webhook_endpoints.c.pk == deliveries.c.endpoint_pk)
                    .where(webhook_endpoints.c.id == endpoint_id)
                    .order_by(deliveries.c.pk)
                )
            ).all()
            attempts = (
                await conn.execute(
                    select(delivery_attempts)
                    .where(delivery_attempts.c.delivery_pk.in_([r.pk for r in rows]))
                    .order_by(delivery_attempts.c.pk)
                )
            ).all()
        by_delivery: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for a in attempts:
            by_delivery[a.delivery_pk].append(dict(a._mapping))
        return [{**dict(r._mapping), "log": by_delivery[r.pk]} for r in rows]

    return kassa.call(load())


def first_arrivals_in_sequence(arrivals: list[Arrival]) -> dict[str, list[int]]:
    """Per order, the sequence numbers in the order their first copy arrived."""
    firsts: dict[str, list[int]] = defaultdict(list)
    for a in arrivals:
        if a.seen == 1:
            firsts[a.body["order"]].append(a.body["sequence"])
    return firsts


# ----- 1,000 orders ----------------------------------------------------------------------------


@pytest.mark.slow
def test_thousand_paid_orders_every_event_verified_in_sequence(
    kassa: KassaServer, hooks: HookReceiver
) -> None:
    orders = 1000
    _, key = kassa.new_merchant("Reliability Shop")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
        endpoint = register(api, hooks, "/all")

        # About one message in 25 is processed by the receiver, which then answers 500 (as if it
        # crashed before replying): Kassa must send it again, and the copy must be recognisable.
        def answer(arrival: Arrival) -> tuple[int, float]:
            unlucky = int(hashlib.sha256(arrival.webhook_id.encode()).hexdigest(), 16) % 25 == 0
            return (500 if unlucky and arrival.seen == 1 else 200), 0.0

        hooks.answer = answer

        started = time.monotonic()
        order_ids = pay_orders(kassa, key, orders)
        created = time.monotonic()
        kassa.deliver()
        for _ in range(10):  # each retry is due 5 s (±10 %) after the answered-500 attempt
            if all(d["status"] != "pending" for d in endpoint_deliveries(kassa, endpoint["id"])):
                break
            kassa.clock.advance(6)
            kassa.deliver()
        delivered = time.monotonic()
        print(
            f"\n[{kassa.runtime.db.dialect}] {orders} orders created and paid in {created - started:.1f}s, "
            f"{orders * len(PAID_FLOW)} events delivered in {delivered - created:.1f}s"
        )
        events = all_events(api)

    arrivals = hooks.snapshot("/all")
    assert arrivals and all(a.verified for a in arrivals), "every message verifies"
    assert all(a.webhook_id == a.body["id"] for a in arrivals), "webhook-id is the event id"

    # Exactly the expected events: five per order, in the paid flow's order, nothing else.
    assert len(order_ids) == len(set(order_ids)) == orders
    assert len(events) == orders * len(PAID_FLOW)
    flows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for e in events:
        flows[e["order"]].append((e["sequence"], e["type"]))
    assert set(flows) == set(order_ids)
    for order_id, flow in flows.items():
        assert sorted(flow) == list(enumerate(PAID_FLOW, start=1)), order_id

    # Each delivered at least once, and nothing that is not an event of this merchant.
    event_ids = {e["id"] for e in events}
    assert {a.webhook_id for a in arrivals} == event_ids
    by_event = {e["id"]: e for e in events}
    for a in arrivals:
        e = by_event[a.webhook_id]
        assert (a.body["type"], a.body["sequence"], a.body["order"]) == (e["type"], e["sequence"], e["order"])

    # Per order, the first copies arrived in sequence.
    for order_id, sequence in first_arrivals_in_sequence(arrivals).items():
        assert sequence == [1, 2, 3, 4, 5], order_id

    # Duplicates: exactly the messages answered with 500, each sent again with the same webhook-id
    # and the same body; deduplicating by webhook-id leaves one copy of every event.
    copies = Counter(a.webhook_id for a in arrivals)
    failed_once = {a.webhook_id for a in arrivals if a.seen == 1 and answer(a)[0] == 500}
    assert 100 < len(failed_once) < 320  # about 1 in 25 of 5,000
    assert {i for i, n in copies.items() if n > 1} == failed_once
    assert all(copies[i] == 2 for i in failed_once)
    raw: dict[str, set[bytes]] = defaultdict(set)
    for a in arrivals:
        raw[a.webhook_id].add(a.raw)
    assert all(len(bodies) == 1 for bodies in raw.values()), "a retry carries the same body"
    assert len({a.webhook_id: a for a in arrivals}) == orders * len(PAID_FLOW)

    # Kassa's delivery log agrees with what the receiver saw, attempt for attempt.
    log = endpoint_deliveries(kassa, endpoint["id"])
    assert len(log) == orders * len(PAID_FLOW)
    assert all(d["status"] == "succeeded" for d in log)
    assert sum(d["attempts"] for d in log) == sum(len(d["log"]) for d in log) == len(arrivals)
    assert [d["log"][-1]["status_code"] for d in log] == [200] * len(log)


# ----- an outage: 500s, then timeouts, then recovery ------------------------------------------

# Attempt n+1 is due SCHEDULE[n] after attempt n failed (Standard Webhooks schedule, ±10 % jitter).
SCHEDULE = [5, 300, 1800, 7200, 18000]


def test_outage_500_then_timeouts_then_recovery(kassa: KassaServer, hooks: HookReceiver) -> None:
    orders = 3
    _, key = kassa.new_merchant("Outage Shop")
    runtime, original = kassa.runtime, kassa.runtime.settings
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
        endpoint = register(api, hooks, "/flaky")
        mode: dict[str, tuple[int, float]] = {"answer": (500, 0.0)}
        hooks.answer = lambda _arrival: mode["answer"]
        order_ids = pay_orders(kassa, key, orders, threads=1)
        # The receiver hangs 1.5 s in the timeout phase; Kassa gives up after 0.5 s.
        runtime.settings = original.model_copy(update={"webhook_timeout": 0.5})
        try:
            kassa.deliver()  # attempt 1 of each order's first event: 500
            # What attempts 2.. meet: 500, a timeout twice (200 but only after 1.5 s), 503, recovery.
            timeout = (200, 1.5)
            phases = [(500, 0.0), timeout, timeout, (503, 0.0), (200, 0.0)]
            for attempt, answer in enumerate(phases, start=2):
                mode["answer"] = answer
                heads = [d for d in endpoint_deliveries(kassa, endpoint["id"]) if d["attempts"]]
                # Only each order's first event has been tried; the rest wait behind it (FIFO).
                assert len(heads) == orders and {d["attempts"] for d in heads} == {attempt - 1}
                assert all(d["status"] == "pending" for d in heads)
                due = sorted(d["next_attempt_at"] for d in heads)
                before = len(hooks.snapshot())
                # Nothing goes out early (the test clock is real time plus an offset, so the margin
                # is wide enough for a slow machine; the first gap of the schedule is 5 s) ...
                kassa.clock.advance((due[0] - kassa.clock.now()).total_seconds() - 3)
                kassa.deliver()
                assert len(hooks.snapshot()) == before
                # ... and each due message goes out once when its time comes.
                kassa.clock.advance((due[-1] - kassa.clock.now()).total_seconds() + 1)
                kassa.deliver()
                if answer != (200, 0.0):
                    assert len(hooks.snapshot()) == before + orders
        finally:
            runtime.settings = original
        kassa.deliver()
        after = api.get(f"/api/v1/webhook-endpoints/{endpoint['id']}").json()
        events = all_events(api)

    # Everything arrived, verified, in sequence per order; the outage left only duplicates of the
    # first event of each order (same webhook-id), which was retried through the schedule.
    arrivals = hooks.snapshot("/flaky")
    assert all(a.verified for a in arrivals)
    assert {a.webhook_id for a in arrivals} == {e["id"] for e in events}
    assert len(events) == orders * len(PAID_FLOW)
    for order_id in order_ids:
        assert first_arrivals_in_sequence(arrivals)[order_id] == [1, 2, 3, 4, 5]
    copies = Counter(a.webhook_id for a in arrivals)
    heads = {e["id"] for e in events if e["sequence"] == 1}
    assert {i for i, n in copies.items() if n > 1} == heads
    assert all(copies[i] == len(SCHEDULE) + 1 for i in heads)

    # The attempt log follows the schedule: each retry no earlier than its delay minus 10 %, and
    # no later than plus 10 % (the test moves the clock to just past the last due message).
    log = endpoint_deliveries(kassa, endpoint["id"])
    assert all(d["status"] == "succeeded" for d in log)
    for d in log:
        if d["attempts"] == 1:
            assert d["log"][0]["status_code"] == 200
            continue
        times = [a["attempted_at"] for a in d["log"]]
        codes = [(a["status_code"], a["error"]) for a in d["log"]]
        assert codes == [
            (500, "HTTP 500"),
            (500, "HTTP 500"),
            (None, "timeout"),
            (None, "timeout"),
            (503, "HTTP 503"),
            (200, None),
        ]
        for k, delay in enumerate(SCHEDULE):
            gap = times[k + 1] - times[k]
            assert timedelta(seconds=delay * 0.9) <= gap <= timedelta(seconds=delay * 1.1 + 3), (k, gap)
        assert all(500 <= a["duration_ms"] < 1400 for a in d["log"][2:4]), "timeouts cut at 0.5 s"
    # The endpoint recovered: still enabled, no longer marked failing.
    assert after["enabled"] is True and after["failing_since"] is None


def test_head_of_line_is_per_order_and_per_endpoint(kassa: KassaServer, hooks: HookReceiver) -> None:
    """While one order's first event keeps failing, other orders and other endpoints go on."""
    _, key = kassa.new_merchant("Blocked Shop")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
        register(api, hooks, "/a")
        register(api, hooks, "/b")
        blocked = pay_orders(kassa, key, 1, threads=1)[0]
        first = api.get("/api/v1/events", params={"order": blocked, "type": "order.created"}).json()["data"]
        bad_id = first[0]["id"]
        hooks.answer = lambda a: (500 if a.path == "/a" and a.webhook_id == bad_id else 200, 0.0)
        others = pay_orders(kassa, key, 4, threads=1)
        kassa.deliver()
        on_a, on_b = hooks.snapshot("/a"), hooks.snapshot("/b")
        # /a: the blocked order is stuck at its first event; the other orders are complete.
        assert [a.body["sequence"] for a in on_a if a.body["order"] == blocked] == [1]
        for order_id in others:
            assert [a.body["sequence"] for a in on_a if a.body["order"] == order_id] == [1, 2, 3, 4, 5]
        # /b is a separate queue: the blocked order went through there.
        assert [a.body["sequence"] for a in on_b if a.body["order"] == blocked] == [1, 2, 3, 4, 5]
        hooks.answer = always_ok
        kassa.clock.advance(6)
        kassa.deliver()
        on_a = hooks.snapshot("/a")
        assert [a.body["sequence"] for a in on_a if a.body["order"] == blocked] == [1, 1, 2, 3, 4, 5]
        assert all(a.verified for a in hooks.snapshot())


# ----- regressions: bugs found here and fixed in src/kassa/worker/deliveries.py ----------------------


def test_run_loop_keeps_a_busy_endpoint_busy(kassa: KassaServer, hooks: HookReceiver) -> None:
    import asyncio

    from kassa.notify.outbound import OutboundPools
    from kassa.worker.deliveries import DeliveryWorker

    _, key = kassa.new_merchant("Busy Shop")
    worker = DeliveryWorker(kassa.runtime, OutboundPools(kassa.settings.webhook_per_target, verify=False))

    async def start() -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(worker.run())

    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
        register(api, hooks, "/busy", event_types=["order.created"])
        kassa.deliver()  # whatever other tests left due goes first, outside the measurement
        for i in range(60):
            assert api.post("/api/v1/orders", json={"amount": 100 + i, "currency": "EUR"}).status_code == 201
    started = time.monotonic()
    task = kassa.call(start())
    try:
        deadline = started + 30
        while len(hooks.snapshot("/busy")) < 60 and time.monotonic() < deadline:
            time.sleep(0.02)
        elapsed = time.monotonic() - started
    finally:
        assert kassa.loop is not None
        kassa.loop.call_soon_threadsafe(task.cancel)
        time.sleep(0.2)
        kassa.call(worker.aclose())
    assert len(hooks.snapshot("/busy")) == 60
    # 60 due deliveries to one endpoint, 4 at a time: well under a second of work on loopback.
    # With the bug the loop idles 0.5 s after every batch of 4: about 7.5 s.
    assert elapsed < 3.0, elapsed


def test_backlog_of_a_slow_endpoint_does_not_starve_others(kassa: KassaServer) -> None:
    slow, fast = HookReceiver().start(), HookReceiver().start()
    slow.answer = lambda _arrival: (200, 0.1)
    try:
        _, key_slow = kassa.new_merchant("Slow Backlog Shop")
        _, key_fast = kassa.new_merchant("Fast Shop")
        with (
            httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key_slow}"}) as a,
            httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key_fast}"}) as b,
        ):
            register(a, slow, "/slow", event_types=["order.created"])
            register(b, fast, "/fast", event_types=["order.created"])
            kassa.deliver()  # leftovers of other tests first
            for i in range(200):  # a backlog longer than the claim window (4 x 32 rows)
                assert (
                    a.post("/api/v1/orders", json={"amount": 100 + i, "currency": "EUR"}).status_code == 201
                )
            assert b.post("/api/v1/orders", json={"amount": 5, "currency": "EUR"}).status_code == 201
            started = time.monotonic()
            kassa.deliver()
        assert len(slow.snapshot()) == 200 and len(fast.snapshot()) == 1
        fast_at = fast.snapshot()[0].at
        # The fast endpoint's one message should go out at once, not after most of the backlog.
        assert fast_at - started < 1.0, fast_at - started
    finally:
        slow.stop()
        fast.stop()
