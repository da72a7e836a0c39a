"""Gateway notifications against the core (services/gateways.py) on SQLite and PostgreSQL: any
sequence of notices, repeats and garbage leaves exactly what the first decisive notice says."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kassa.errors import KassaError, NotFound
from tests.support.server import KassaServer

NOTICES = st.lists(st.sampled_from(["paid", "failed", "garbage", "unknown_address"]), min_size=1, max_size=6)


def _receive(kassa: KassaServer, merchant_pk: int, body: dict[str, str]) -> dict[str, Any] | None:
    try:
        return kassa.call(kassa.runtime.gateways.receive(merchant_pk, "test", body)).order
    except KassaError:
        return None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=NOTICES)
def test_notice_sequences(kassa: KassaServer, api: httpx.Client, sequence: list[str]) -> None:
    created = api.post("/api/v1/orders", json={"amount": 700, "currency": "EUR"})
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    merchant_pk = kassa.call(kassa.runtime.orders.get_public(order_id))[1].pk
    address = f"test:{order_id}"
    for notice in sequence:
        if notice == "garbage":
            body = {"address": order_id, "result": "paid"}  # not a test rail address
        elif notice == "unknown_address":
            body = {"address": "test:ord_unknown", "result": "paid"}  # never issued
        else:
            body = {"address": address, "result": notice}
        _receive(kassa, merchant_pk, body)
    order = api.get(f"/api/v1/orders/{order_id}").json()
    live = [p for p in order["payments"] if p["status"] != "rejected"]
    rejected = [p for p in order["payments"] if p["status"] == "rejected"]
    decisive = [n for n in sequence if n in ("paid", "failed")]
    if "paid" in decisive:
        assert order["status"] == "paid" and len(live) == 1 and live[0]["amount"] == 700
        first_paid = decisive.index("paid")
        assert len(rejected) == (1 if "failed" in decisive[:first_paid] else 0)  # later failures ignored
    else:
        assert order["status"] == "open" and live == []
        assert len(rejected) == (1 if decisive else 0)  # the same failure again is a repeat
    events = [
        e["type"] for e in api.get("/api/v1/events", params={"order": order_id, "limit": 100}).json()["data"]
    ]
    assert events.count("order.paid") == (1 if "paid" in decisive else 0)
    assert events.count("payment.rejected") == len(rejected)


def test_a_notice_for_another_merchants_order_is_unknown(kassa: KassaServer, api: httpx.Client) -> None:
    created = api.post("/api/v1/orders", json={"amount": 700, "currency": "EUR"}).json()
    other_id, _key = kassa.new_merchant("Other")
    other_pk = kassa.call(kassa.runtime.merchants.get(other_id)).pk
    with pytest.raises(KassaError) as refused:
        kassa.call(
            kassa.runtime.gateways.receive(
                other_pk, "test", {"address": f"test:{created['id']}", "result": "paid"}
            )
        )
    assert refused.value.status == 404
    assert api.get(f"/api/v1/orders/{created['id']}").json()["payments"] == []
    with pytest.raises(NotFound, match="not enabled"):
        kassa.call(kassa.runtime.gateways.receive(other_pk, "grin", {}))
