"""Fuzz `/public/poll-payment`'s query (hypothesis): never a 5xx, always one of Taler's answers or
errors, and nothing changes an order except the documented session binding (services/sessions.py).
The server caps long polls at 50 ms here, so any `timeout` may be tried."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote_from_bytes

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kassa.domain import crockford
from kassa.domain.contract import parse_hash
from tests.support.server import KassaServer
from tests.support.taler import FULFILLMENT, POLL, TalerShop

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SESSIONS = ["S1", "S2", "S3", ""]
CODES = {400: {25, 26}, 403: {2009}, 404: {2005}}


@pytest.fixture(scope="module")
def quick(kassa: KassaServer) -> Iterator[KassaServer]:
    server = kassa.sibling(long_poll_max_ms=50).start()
    try:
        yield server
    finally:
        server.stop()


class Orders:
    """The merchant's orders in every state the rule distinguishes, and what each looked like last."""

    def __init__(self, server: KassaServer) -> None:
        _, key = server.new_merchant("Fuzzed Shop")
        self.api = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        self.anon = httpx.Client(base_url=server.base_url, timeout=30)
        shop = TalerShop(self.api, self.anon)
        paid_bound = shop.create(order_id="paid-bound", fulfillment_url=FULFILLMENT, session_id="S1")
        paid_free = shop.create(order_id="paid-free", fulfillment_url=FULFILLMENT)
        shop.pay(paid_bound)
        shop.pay(paid_free)
        bound = shop.create(order_id="open-bound", fulfillment_url=FULFILLMENT, session_id="S2")
        free = [shop.create(order_id=f"open-{i}", fulfillment_url=FULFILLMENT) for i in range(4)]
        nameless = shop.create(fulfillment_url=FULFILLMENT)
        _, other_key = server.new_merchant("Other Shop")
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {other_key}"}) as api:
            twin = TalerShop(api, self.anon).create(order_id="open-0", fulfillment_url=FULFILLMENT)
        self.ids = [o["id"] for o in (paid_bound, paid_free, bound, *free, nameless)]
        self.last = {oid: shop.native(oid) for oid in self.ids}
        self.hashes = [o["h_contract"] for o in self.last.values()] + [twin["h_contract"]]
        self.bindings = 0

    def close(self) -> None:
        self.api.close()
        self.anon.close()

    def check_unchanged_but_bound(self, query: dict[str, str], status: int) -> None:
        """Every order is as it was, except one this query found, unpaid and without a session,
        which is now bound to the query's session (and one version further)."""
        for oid in self.ids:
            now = self.api.get(f"/api/v1/orders/{oid}").json()
            before = self.last[oid]
            if now == before:
                continue
            assert status == 200, (query, status)
            assert query.get("order_id") in (oid, before["order_id"])
            assert parse_hash(query.get("h_contract", "")) == parse_hash(before["h_contract"])
            assert before["session_id"] is None and before["status"] != "paid"
            assert now["session_id"] == query.get("session_id") != ""
            changed = {k for k in now if now[k] != before[k]}
            assert changed == {"session_id", "version", "updated_at"}, changed
            assert now["version"] == before["version"] + 1
            self.last[oid] = now
            self.bindings += 1


@pytest.fixture
def shop_orders(quick: KassaServer) -> Iterator[Orders]:
    orders = Orders(quick)
    try:
        yield orders
    finally:
        orders.close()


def check_answer(response: httpx.Response) -> None:
    assert response.status_code in (200, 400, 403, 404), (response.status_code, response.text)
    body: Any = response.json()
    if response.status_code == 200:
        if body["paid"]:
            assert set(body) - {"refund_amount"} == {"paid", "refunded"} and body["refunded"] is False
        else:
            assert set(body) - {"already_paid_order_id"} == {"paid", "taler_pay_uri"}
            assert body["taler_pay_uri"].startswith("http://127.0.0.1:")
    else:
        assert set(body) == {"code", "hint"} and body["code"] in CODES[response.status_code], body


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@st.composite
def queries(draw: st.DrawFn, orders: list[dict[str, Any]], hashes: list[str]) -> dict[str, str]:
    """Half well-formed (an order's own id and hash, a known session), half anything."""
    order = draw(st.sampled_from(orders))
    if draw(st.booleans()):
        query = {"order_id": order["order_id"] or order["id"], "h_contract": order["h_contract"]}
        session = draw(st.sampled_from(SESSIONS))
        return {**query, "session_id": session, "timeout": draw(st.sampled_from(["0", "1", "007"]))}
    h = draw(
        st.one_of(
            st.sampled_from(hashes),
            st.sampled_from(hashes).map(str.lower),
            st.text(st.sampled_from(crockford.ALPHABET + "oilu*"), min_size=101, max_size=104),
            TEXT,
        )
    )
    candidates = {
        "order_id": draw(st.one_of(st.sampled_from([order["id"], order["order_id"] or ""]), TEXT)),
        "h_contract": h,
        "session_id": draw(st.one_of(st.sampled_from(SESSIONS), TEXT, st.text(min_size=195, max_size=205))),
        "timeout": draw(st.one_of(st.integers(-3, 10**30).map(str), TEXT)),
    }
    keep = draw(st.lists(st.sampled_from(sorted(candidates)), unique=True))
    return {k: candidates[k] for k in keep}


def test_fuzz_the_query(shop_orders: Orders) -> None:
    @FUZZ
    @given(query=queries(list(shop_orders.last.values()), shop_orders.hashes))
    def run(query: dict[str, str]) -> None:
        response = shop_orders.anon.get(POLL, params=query)
        check_answer(response)
        shop_orders.check_unchanged_but_bound(query, response.status_code)

    run()
    assert shop_orders.bindings, "no poll ever bound an order: the fuzz missed the one allowed change"


def test_fuzz_raw_query_strings(shop_orders: Orders) -> None:
    names = st.sampled_from(["order_id", "h_contract", "session_id", "timeout", "x", ""])

    @FUZZ
    @given(pairs=st.lists(st.tuples(names, st.binary(max_size=40)), max_size=6))
    def run(pairs: list[tuple[str, bytes]]) -> None:
        raw = "&".join(f"{name}={quote_from_bytes(value, safe='')}" for name, value in pairs)
        response = shop_orders.anon.get(f"{POLL}?{raw}")
        check_answer(response)
        as_read = dict(parse_qsl(raw, keep_blank_values=True))  # the last of repeated names, as Starlette
        shop_orders.check_unchanged_but_bound(as_read, response.status_code)

    run()
