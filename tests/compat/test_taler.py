"""GNU Taler's `/public/poll-payment` against a real Kassa server (SQLite and PostgreSQL): the
answers word for word, the contract hash, Taler's errors, the session rule and long polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kassa.domain import crockford
from tests.support.server import KassaServer
from tests.support.taler import FULFILLMENT, PAID, POLL, TalerShop, unpaid


@pytest.fixture
def shop(api: httpx.Client, anon: httpx.Client) -> TalerShop:
    return TalerShop(api, anon)


@pytest.fixture
def other_shop(kassa: KassaServer, anon: httpx.Client) -> Iterator[TalerShop]:
    """A second merchant on the same server."""
    _, key = kassa.new_merchant("Other Shop")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        yield TalerShop(api, anon)


def error(response: httpx.Response) -> tuple[int, int]:
    body = response.json()
    assert set(body) == {"code", "hint"} and isinstance(body["hint"], str), body
    return response.status_code, body["code"]


# ----- the answers --------------------------------------------------------------------------------


def test_unpaid_then_paid(shop: TalerShop) -> None:
    order = shop.create(order_id="article-1", fulfillment_url=FULFILLMENT)
    assert shop.answer(order) == unpaid(order)
    shop.send(order)
    assert shop.answer(order) == unpaid(order)  # processing is not paid yet
    shop.confirm()
    assert shop.answer(order) == PAID
    assert shop.answer({**order, "order_id": None}) == PAID  # by Kassa's id too


def test_refunded(shop: TalerShop) -> None:
    order = shop.create(order_id="refunded-1")
    shop.pay(order)
    refund = shop.api.post(
        f"/api/v1/orders/{order['id']}/refunds", json={"amount": 150, "destination": "test:payer"}
    )
    assert refund.status_code == 201, refund.text  # the test rail sends it at once
    assert shop.answer(order) == {"paid": True, "refunded": True, "refund_amount": "USD:1.50"}
    untouched = shop.create(order_id="refunded-2")
    shop.pay(untouched)
    assert shop.answer(untouched) == PAID  # no refund: no refund fields


def test_closed_orders_are_not_paid(shop: TalerShop) -> None:
    order = shop.create()
    assert shop.api.post(f"/api/v1/orders/{order['id']}/cancel").status_code == 200
    assert shop.answer(order) == unpaid(order)


# ----- the contract hash --------------------------------------------------------------------------


def test_h_contract_is_taler_s_hash_form_and_stable(shop: TalerShop) -> None:
    order = shop.create(order_id="h-1", fulfillment_url=FULFILLMENT, cart=[{"name": "Tee", "price": 500}])
    h = order["h_contract"]
    assert len(h) == 103 and set(h) <= set(crockford.ALPHABET)
    assert crockford.decode(h, 64) is not None
    assert shop.native("h-1")["h_contract"] == h
    shop.pay(order)
    assert shop.native("h-1")["h_contract"] == h  # terms do not change with the state
    listed = shop.api.get("/api/v1/orders", params={"order_id": "h-1"}).json()["data"]
    assert listed[0]["h_contract"] == h
    assert shop.create(order_id="h-2")["h_contract"] != h


def test_h_contract_is_read_as_taler_reads_it(shop: TalerShop) -> None:
    order = shop.create()
    for variant in (order["h_contract"].lower(), order["h_contract"].replace("0", "O").replace("1", "L")):
        assert shop.answer({**order, "h_contract": variant}) == unpaid(order)


def test_same_order_id_at_two_merchants(shop: TalerShop, other_shop: TalerShop) -> None:
    mine = shop.create(order_id="shared-7")
    theirs = other_shop.create(order_id="shared-7")
    shop.pay(mine)
    assert shop.answer(mine) == PAID
    assert other_shop.answer(theirs) == unpaid(theirs)
    # The id of the one, with the hash of the other: the hash decides.
    assert other_shop.answer({**mine, "order_id": "shared-7"}) == PAID


# ----- errors -------------------------------------------------------------------------------------


def test_errors_in_taler_s_style(shop: TalerShop, anon: httpx.Client) -> None:
    order = shop.create(order_id="err-1")
    other = shop.create(order_id="err-2")
    h = order["h_contract"]
    assert error(anon.get(POLL, params={"h_contract": h})) == (400, 25)  # PARAMETER_MISSING
    assert error(anon.get(POLL, params={"order_id": "err-1", "h_contract": ""})) == (400, 25)
    assert error(anon.get(POLL, params={"order_id": "", "h_contract": h})) == (400, 25)
    assert error(anon.get(POLL, params={"order_id": "err-1"})) == (400, 25)
    for bad in ("x", h[:-1], h + "0", h[:-1] + "!", h[:-1] + "é", "U" * 102 + "*"):
        assert error(anon.get(POLL, params={"order_id": "err-1", "h_contract": bad})) == (400, 26), bad
    for timeout in ("-1", "abc", "1.5", " 1", "", "+1", "1e3", "٣"):
        response = shop.poll(order, timeout=timeout)
        assert error(response) == (400, 26), timeout  # PARAMETER_MALFORMED
    assert error(shop.poll(order, session_id="s" * 201)) == (400, 26)
    assert error(shop.poll(order, session_id="a\x00b")) == (400, 26)
    assert error(shop.poll({**order, "order_id": "nope"})) == (404, 2005)  # ORDER_UNKNOWN
    assert error(shop.poll({**order, "order_id": "a\x00b"})) == (400, 26)
    assert error(shop.poll({**order, "order_id": "x" * 300})) == (404, 2005)
    wrong = shop.poll({**order, "h_contract": other["h_contract"]})
    assert error(wrong) == (403, 2009)  # CONTRACT_HASH_DOES_NOT_MATCH_ORDER
    assert error(shop.poll({**order, "h_contract": "0" * 103})) == (403, 2009)
    assert shop.native("err-1")["version"] == order["version"]  # none of it touched the order


def test_a_huge_timeout_is_capped_not_refused(shop: TalerShop) -> None:
    order = shop.create()
    shop.pay(order)
    assert shop.answer(order, timeout="9" * 5000) == PAID  # paid: at once


# ----- sessions -----------------------------------------------------------------------------------


def test_an_order_created_in_a_session(shop: TalerShop) -> None:
    order = shop.create(order_id="s-1", fulfillment_url=FULFILLMENT, session_id="browser-A")
    assert shop.answer(order, session_id="browser-A") == unpaid(order)
    assert shop.answer(order, session_id="browser-B") == unpaid(order)
    shop.pay(order)
    assert shop.answer(order, session_id="browser-A") == PAID
    assert shop.answer(order) == PAID  # no session: paid regardless
    assert shop.answer(order, session_id="browser-B") == unpaid(order)  # prove it in this session
    assert shop.native("s-1")["session_id"] == "browser-A"


def test_the_first_poll_in_a_session_binds_an_unpaid_order(shop: TalerShop) -> None:
    order = shop.create(order_id="s-2")
    assert shop.answer(order) == unpaid(order)
    assert shop.native("s-2")["version"] == order["version"]  # no session: nothing to bind
    assert shop.answer(order, session_id="browser-A") == unpaid(order)
    bound = shop.native("s-2")
    assert bound["session_id"] == "browser-A" and bound["version"] == order["version"] + 1
    assert shop.answer(order, session_id="browser-B") == unpaid(order)
    assert shop.native("s-2") == bound  # bound once, for good
    shop.pay(order)
    assert shop.answer(order, session_id="browser-A") == PAID
    assert shop.answer(order, session_id="browser-B") == unpaid(order)


def test_a_paid_order_without_a_session_is_paid_in_every_session(shop: TalerShop) -> None:
    order = shop.create(order_id="s-3")
    shop.pay(order)
    before = shop.native("s-3")
    assert shop.answer(order, session_id="browser-A") == PAID
    assert shop.answer(order, session_id="browser-B") == PAID
    assert shop.native("s-3") == before  # a paid order is never bound


def test_an_empty_session_id_is_no_session(shop: TalerShop) -> None:
    order = shop.create(order_id="s-4")
    assert shop.answer(order, session_id="") == unpaid(order)
    assert shop.native("s-4")["session_id"] is None


def test_a_session_id_of_the_longest_length_binds(shop: TalerShop) -> None:
    order = shop.create(order_id="s-5")
    assert shop.answer(order, session_id="é" * 200) == unpaid(order)
    assert shop.native("s-5")["session_id"] == "é" * 200


def test_already_paid_in_this_session(shop: TalerShop, other_shop: TalerShop) -> None:
    first = shop.create(order_id="buy-1", fulfillment_url=FULFILLMENT, session_id="browser-A")
    shop.pay(first)
    again = shop.create(order_id="buy-2", fulfillment_url=FULFILLMENT)
    assert shop.answer(again, session_id="browser-A") == unpaid(again, already_paid_order_id="buy-1")
    assert shop.answer(again, session_id="browser-B") == unpaid(again)
    assert shop.answer(again) == unpaid(again)
    elsewhere = shop.create(order_id="buy-3", fulfillment_url=FULFILLMENT + "/other")
    assert shop.answer(elsewhere, session_id="browser-A") == unpaid(elsewhere)
    # Another merchant's order for the same URL in the same session is not this merchant's.
    theirs = other_shop.create(order_id="buy-4", fulfillment_url=FULFILLMENT)
    assert other_shop.answer(theirs, session_id="browser-A") == unpaid(theirs)
    # Without a merchant order id, Kassa's id names it; the latest paid one wins.
    latest = shop.create(fulfillment_url=FULFILLMENT, session_id="browser-A")
    shop.pay(latest)
    assert shop.answer(again, session_id="browser-A") == unpaid(again, already_paid_order_id=latest["id"])


# ----- long polling -------------------------------------------------------------------------------


def poll_in_thread(
    kassa: KassaServer, shop: TalerShop, order: dict[str, Any], **params: Any
) -> dict[str, Any]:
    """Starts a poll in another thread; the result dict fills in when it answers."""
    result: dict[str, Any] = {}

    def run() -> None:
        with httpx.Client(base_url=kassa.base_url, timeout=60) as client:
            response = TalerShop(shop.api, client).poll(order, **params)
            result["at"] = time.monotonic()
            result["status"] = response.status_code
            result["body"] = response.json()

    result["thread"] = threading.Thread(target=run)
    result["thread"].start()
    return result


def wait_for_waiter(kassa: KassaServer, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while kassa.runtime.hub.waiting < count:
        assert time.monotonic() < deadline, "the poll never started waiting"
        time.sleep(0.01)


def test_a_long_poll_answers_as_soon_as_the_order_is_paid(kassa: KassaServer, shop: TalerShop) -> None:
    order = shop.create(order_id="lp-1", session_id="browser-A")
    started = time.monotonic()
    result = poll_in_thread(kassa, shop, order, session_id="browser-A", timeout=30)
    wait_for_waiter(kassa)
    shop.send(order)  # processing: the poll goes on waiting
    time.sleep(0.3)
    assert "at" not in result
    shop.confirm()
    confirmed = time.monotonic()
    result["thread"].join(10)
    assert result["status"] == 200 and result["body"] == PAID
    print(f"\nin-process wake: {(result['at'] - confirmed) * 1000:.1f} ms")  # pytest -s shows it
    assert result["at"] - confirmed < 0.5, f"answered {result['at'] - confirmed:.3f} s after the payment"
    assert result["at"] - started < 5  # well before the 30 s timeout
    assert kassa.runtime.hub.waiting == 0


def test_a_long_poll_answers_unpaid_at_the_timeout(kassa: KassaServer, shop: TalerShop) -> None:
    order = shop.create()
    start = time.monotonic()
    assert shop.answer(order, timeout=1) == unpaid(order)
    assert 0.95 <= time.monotonic() - start < 3
    start = time.monotonic()
    assert shop.answer(order, timeout=0) == unpaid(order)
    assert time.monotonic() - start < 0.5


def test_settled_answers_do_not_wait(shop: TalerShop) -> None:
    paid = shop.create(order_id="lp-2", fulfillment_url=FULFILLMENT, session_id="browser-A")
    shop.pay(paid)
    again = shop.create(order_id="lp-3", fulfillment_url=FULFILLMENT)
    start = time.monotonic()
    assert shop.answer(paid, timeout=30) == PAID
    assert shop.answer(paid, session_id="browser-B", timeout=30) == unpaid(paid)  # paid elsewhere
    assert shop.answer(again, session_id="browser-A", timeout=30) == unpaid(
        again, already_paid_order_id="lp-2"
    )
    assert time.monotonic() - start < 2


def test_the_wait_is_capped_by_the_server(kassa: KassaServer, merchant: tuple[str, str]) -> None:
    capped = kassa.sibling(long_poll_max_ms=300).start()
    try:
        headers = {"Authorization": f"Bearer {merchant[1]}"}
        with (
            httpx.Client(base_url=capped.base_url, headers=headers, timeout=30) as api,
            httpx.Client(base_url=capped.base_url, timeout=30) as anon,
        ):
            shop = TalerShop(api, anon)
            order = shop.create()
            start = time.monotonic()
            assert shop.answer(order, timeout=30) == unpaid(order)
            assert 0.25 <= time.monotonic() - start < 2
    finally:
        capped.stop()


def test_a_client_that_leaves_frees_its_waiter(kassa: KassaServer, shop: TalerShop) -> None:
    order = shop.create()
    with httpx.Client(base_url=kassa.base_url, timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        TalerShop(shop.api, client).poll(order, timeout=30)
    deadline = time.monotonic() + 3
    while kassa.runtime.hub.waiting:
        assert time.monotonic() < deadline, "the waiter outlived its client"
        time.sleep(0.02)
