"""The receiver example in docs/webhooks.md, run for real.

The first ```python block after the `receiver-example` marker is written to a file and started as
its own process, listening on loopback. Kassa delivers to it; then forged, replayed, tampered and
duplicate messages are sent to it directly.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from kassa.notify.signing import new_secret, sign_headers
from tests.support.server import KassaServer, free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def example_code() -> str:
    text = DOC.read_text()
    marker = text.index("<!-- receiver-example")
    match = re.compile(r"```python\n(.*?)\n```", re.DOTALL).search(text, marker)
    assert match, "no ```python block after the receiver-example marker"
    return match.group(1) + "\n"


@dataclass
class Example:
    url: str
    db: Path
    proc: subprocess.Popen[str]

    def recorded(self) -> list[tuple[str, str, str, int]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(
                "SELECT webhook_id, type, order_id, sequence FROM kassa_events ORDER BY rowid"
            ).fetchall()

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(self.url, content=body, headers=headers, timeout=10)


def start_example(tmp_path: Path, secrets: str) -> Example:
    script = tmp_path / "kassa_receiver.py"
    script.write_text(example_code())
    port = free_port()
    db = tmp_path / "received.db"
    env = {**os.environ, "KASSA_WEBHOOK_SECRET": secrets, "WEBHOOK_DB": str(db), "PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"the example did not start: {proc.communicate()}") from None
            time.sleep(0.05)
    return Example(f"http://127.0.0.1:{port}/kassa", db, proc)


@pytest.fixture
def shop(kassa: KassaServer) -> Iterator[httpx.Client]:
    _, key = kassa.new_merchant("Example Shop")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        yield api


def deliveries_of(api: httpx.Client, endpoint_id: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/webhook-endpoints/{endpoint_id}/deliveries", params={"limit": 100})
    data: list[dict[str, Any]] = r.json()["data"]
    return data[::-1]  # oldest first


def test_example_is_plain_python_with_only_standardwebhooks() -> None:
    code = example_code()
    compile(code, "kassa_receiver.py", "exec")
    imports = set(re.findall(r"^(?:from|import) (\w+)", code, re.MULTILINE))
    assert imports - set(sys.stdlib_module_names) == {"standardwebhooks"}


def test_example_receiver_verifies_and_deduplicates(
    kassa: KassaServer, shop: httpx.Client, tmp_path: Path
) -> None:
    # A port for the example first, so that the endpoint (and its secret) can exist before it starts.
    example_port = free_port()
    r = shop.post("/api/v1/webhook-endpoints", json={"url": f"http://127.0.0.1:{example_port}/kassa"})
    endpoint = r.json()
    secret = endpoint["secret"]
    example = start_example(tmp_path, secret)
    try:
        shop.patch(f"/api/v1/webhook-endpoints/{endpoint['id']}", json={"url": example.url})

        # Real deliveries from Kassa verify and are handled once each, in order.
        order = shop.post(
            "/api/v1/orders",
            json={"amount": 1050, "currency": "USD", "confirmations": 0, "order_id": "shop-42"},
        ).json()
        shop.post("/api/v1/test/payments", json={"order": order["id"], "amount": 1050})
        kassa.deliver()
        log = deliveries_of(shop, endpoint["id"])
        assert [(d["status"], d["attempts"][-1]["status_code"]) for d in log] == [("succeeded", 200)] * 5
        assert all('"ok"' in d["attempts"][-1]["response_excerpt"] for d in log)
        events = shop.get("/api/v1/events", params={"order": order["id"]}).json()["data"][::-1]
        assert example.recorded() == [(e["id"], e["type"], order["id"], e["sequence"]) for e in events]

        # A redelivery is the same message again: recognised as a duplicate, not handled twice.
        paid = next(e for e in events if e["type"] == "order.paid")
        shop.post(f"/api/v1/events/{paid['id']}/redeliver", json={"endpoint": endpoint["id"]})
        kassa.deliver()
        again = deliveries_of(shop, endpoint["id"])[-1]
        assert again["event"] == paid["id"] and again["status"] == "succeeded"
        assert '"duplicate"' in again["attempts"][-1]["response_excerpt"]
        assert len(example.recorded()) == 5

        # Messages Kassa did not send, or not like this, are refused with 400 and change nothing.
        fake_id = "evt_handsignedhandsignedhand"
        body = json.dumps(
            {**{k: paid[k] for k in ("type", "order", "test", "data")}, "id": fake_id, "sequence": 6},
            separators=(",", ":"),
        ).encode()
        now = datetime.now(UTC)
        genuine = sign_headers([secret], fake_id, now, body)
        forged = sign_headers([new_secret()], fake_id, now, body)
        replayed = sign_headers([secret], fake_id, now - timedelta(minutes=6), body)
        tampered_body = body.replace(b'"sequence":6', b'"sequence":7')
        assert tampered_body != body
        swapped_id = {**genuine, "webhook-id": "evt_otherotherotherotherothe"}
        refused = {
            "forged (wrong secret)": (body, forged),
            "replayed (timestamp 6 minutes old)": (body, replayed),
            "tampered (body changed)": (tampered_body, genuine),
            "another webhook-id": (body, swapped_id),
            "no signature": (body, {"webhook-id": genuine["webhook-id"]}),
            "malformed signature": (body, {**genuine, "webhook-signature": "garbage"}),
            "not UTF-8": (b"\xff\xfe" + body, genuine),
        }
        for name, (content, headers) in refused.items():
            r = example.post(content, {"content-type": "application/json", **headers})
            assert r.status_code == 400, (name, r.status_code, r.text)
        assert len(example.recorded()) == 5

        # The genuine one is accepted once; its replay within the tolerance is a duplicate.
        first = example.post(body, {"content-type": "application/json", **genuine})
        second = example.post(body, {"content-type": "application/json", **genuine})
        assert (first.status_code, first.json()) == (200, {"result": "ok"})
        assert (second.status_code, second.json()) == (200, {"result": "duplicate"})
        assert len(example.recorded()) == 6
    finally:
        example.proc.terminate()
        out, err = example.proc.communicate(timeout=10)
    # handle() ran once for the one order.paid event Kassa sent (and once for the hand-signed one).
    assert out.count(f"paid: {order['id']} (shop-42) 1050 USD") == 2, (out, err)
    assert "Traceback" not in err, err


def test_example_accepts_either_secret_during_rotation(
    kassa: KassaServer, shop: httpx.Client, tmp_path: Path
) -> None:
    example_port = free_port()
    endpoint = shop.post(
        "/api/v1/webhook-endpoints",
        json={"url": f"http://127.0.0.1:{example_port}/kassa", "event_types": ["order.created"]},
    ).json()
    old = endpoint["secret"]
    new = shop.post(
        f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json={"overlap_seconds": 600}
    ).json()["secret"]
    # The receiver has switched to the new secret only; Kassa still signs with both.
    example = start_example(tmp_path, new)
    try:
        shop.patch(f"/api/v1/webhook-endpoints/{endpoint['id']}", json={"url": example.url})
        shop.post("/api/v1/orders", json={"amount": 100, "currency": "EUR"})
        kassa.deliver()
        kassa.clock.advance(601)  # the overlap is over: only the new secret signs
        shop.post("/api/v1/orders", json={"amount": 200, "currency": "EUR"})
        kassa.deliver()
        log = deliveries_of(shop, endpoint["id"])
        assert [d["status"] for d in log] == ["succeeded", "succeeded"]
        assert [t for _, t, _, _ in example.recorded()] == ["order.created", "order.created"]
        assert old != new
    finally:
        example.proc.terminate()
        example.proc.communicate(timeout=10)
