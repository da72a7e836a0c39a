"""The order lifecycle through HTTP on the test rail, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import httpx

from tests.support.server import KassaServer


def create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/api/v1/orders", json={"amount": 1050, "currency": "USD", **body})
    assert response.status_code == 201, response.text
    return response.json()


def pay(api: httpx.Client, order: str, amount: int) -> dict[str, Any]:
    response = api.post("/api/v1/test/payments", json={"order": order, "amount": amount})
    assert response.status_code == 201, response.text
    return response.json()


def mine(api: httpx.Client, count: int = 1) -> dict[str, Any]:
    response = api.post("/api/v1/test/blocks", json={"count": count})
    assert response.status_code == 200, response.text
    return response.json()


def get(api: httpx.Client, order: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/orders/{order}")
    assert response.status_code == 200, response.text
    return response.json()


def test_create_shape(api: httpx.Client, kassa: KassaServer) -> None:
    order = create(
        api,
        order_id="shop-1",
        description="Two pies",
        email="c@example.com",
        success_url="https://shop.example/ok",
        metadata={"cart": 7},
    )
    assert order["id"].startswith("ord_")
    assert order["status"] == "open" and order["exception"] is None
    assert order["order_id"] == "shop-1"
    assert order["checkout_url"] == f"{kassa.base_url}/pay/{order['id']}"
    assert order["test"] is True
    assert order["method"] == "test"
    assert order["payment_methods"] == [
        {
            "method": "test",
            "rail": "test",
            "currency": "USD",
            "amount": 1050,
            "rate": "1",
            "address": f"test:{order['id']}",
            "payment_uri": f"test:{order['id']}?amount=1050",
            "note": None,
            "expires_at": order["expires_at"],
        }
    ]
    assert order["metadata"] == {"cart": 7}
    assert get(api, "shop-1")["id"] == order["id"]  # by the merchant's own id too
    assert (order["archived"], order["locale"], order["auto_redirect"]) == (False, None, True)
    assert (order["tolerance_bps"], order["monitoring_window"]) == (0, 86400)


def test_locale_and_auto_redirect(api: httpx.Client) -> None:
    order = create(api, locale="zh-TW", auto_redirect=False, success_url="https://shop.example/ok")
    assert (order["locale"], order["auto_redirect"]) == ("zh-TW", False)
    assert get(api, order["id"])["locale"] == "zh-TW"
    bad = api.post("/api/v1/orders", json={"amount": 1, "currency": "USD", "locale": "not a language"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "locale"


def test_cart_total_becomes_amount(api: httpx.Client) -> None:
    order = create(
        api,
        amount=None,
        cart=[
            {"name": "Pie", "price": 350, "quantity": 2},
            {"name": "Tea", "price": 150, "quantity": 1, "image": "https://shop.example/tea.png"},
        ],
    )
    assert order["amount"] == 850
    assert order["cart"][1] == {
        "name": "Tea",
        "price": 150,
        "quantity": 1,
        "image": "https://shop.example/tea.png",
    }


def test_paid_through_processing(api: httpx.Client) -> None:
    order = create(api, confirmations=2)
    result = pay(api, order["id"], 1050)
    assert result["order"]["status"] == "processing"
    assert result["order"]["timer_paused"] is True
    assert result["payment"]["status"] == "pending" and result["payment"]["test"] is True
    mine(api)
    assert get(api, order["id"])["status"] == "processing"
    mine(api)
    final = get(api, order["id"])
    assert final["status"] == "paid" and final["exception"] is None
    assert final["amount_confirmed"] == 1050
    assert final["payments"][0]["status"] == "confirmed"
    assert final["paid_at"] is not None


def test_zero_confirmations_pays_at_once(api: httpx.Client) -> None:
    order = create(api, confirmations=0)
    assert pay(api, order["id"], 1050)["order"]["status"] == "paid"


def test_partial_then_expiry_is_underpaid(api: httpx.Client, kassa: KassaServer) -> None:
    order = create(api, expires_in=60)
    after = pay(api, order["id"], 500)["order"]
    assert after["status"] == "open" and after["amount_received"] == 500
    kassa.clock.advance(61)
    kassa.tick()
    final = get(api, order["id"])
    assert (final["status"], final["exception"]) == ("expired", "underpaid")


def test_two_payments_complete_it(api: httpx.Client) -> None:
    order = create(api, confirmations=1)
    pay(api, order["id"], 500)
    assert pay(api, order["id"], 550)["order"]["status"] == "processing"
    mine(api)
    assert get(api, order["id"])["status"] == "paid"


def test_overpayment(api: httpx.Client) -> None:
    order = create(api, confirmations=1)
    pay(api, order["id"], 2000)
    mine(api)
    final = get(api, order["id"])
    assert (final["status"], final["exception"]) == ("paid", "overpaid")
    assert final["amount_received"] == 2000


def test_late_payment(api: httpx.Client, kassa: KassaServer) -> None:
    order = create(api, expires_in=30, confirmations=1)
    kassa.clock.advance(31)
    kassa.tick()
    assert get(api, order["id"])["status"] == "expired"
    result = pay(api, order["id"], 1050)
    assert result["payment"]["late"] is True
    assert result["order"]["status"] == "processing"
    mine(api)
    final = get(api, order["id"])
    assert (final["status"], final["exception"]) == ("paid", "paid_late")


def test_late_payment_before_the_worker_noticed_expiry(api: httpx.Client, kassa: KassaServer) -> None:
    order = create(api, expires_in=30, confirmations=1)
    kassa.clock.advance(31)  # no worker pass: the payment itself must see the order expired
    result = pay(api, order["id"], 1050)
    assert result["payment"]["late"] is True
    mine(api)
    assert get(api, order["id"])["exception"] == "paid_late"


def test_late_payment_refund_policy(kassa: KassaServer) -> None:
    _, key = kassa.new_merchant(late_payment_policy="refund")
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as api:
        order = create(api, expires_in=30)
        kassa.clock.advance(31)
        kassa.tick()
        result = pay(api, order["id"], 1050)
        assert result["payment"]["late"] is True
        assert result["order"]["status"] == "expired"


def test_dropped_payment_reopens_and_timer_resumes(api: httpx.Client, kassa: KassaServer) -> None:
    order = create(api, expires_in=600, confirmations=3)
    payment = pay(api, order["id"], 1050)["payment"]
    kassa.clock.advance(3600)  # far past expiry, but the timer is paused while processing
    kassa.tick()
    assert get(api, order["id"])["status"] == "processing"
    response = api.post(f"/api/v1/test/payments/{payment['id']}/reject")
    assert response.status_code == 200, response.text
    reopened = response.json()["order"]
    assert reopened["status"] == "open" and reopened["timer_paused"] is False
    assert reopened["payments"][0]["status"] == "rejected"


def test_monitoring_window_invalid(kassa: KassaServer) -> None:
    _, key = kassa.new_merchant(monitoring_window=3600)
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as api:
        order = create(api, confirmations=5)
        pay(api, order["id"], 1050)
        kassa.clock.advance(3601)
        kassa.tick()
        assert get(api, order["id"])["status"] == "invalid"


def test_cancel(api: httpx.Client) -> None:
    order = create(api)
    response = api.post(f"/api/v1/orders/{order['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    again = api.post(f"/api/v1/orders/{order['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "order_not_open"


def test_cannot_cancel_processing(api: httpx.Client) -> None:
    order = create(api)
    pay(api, order["id"], 1050)
    response = api.post(f"/api/v1/orders/{order['id']}/cancel")
    assert response.status_code == 409


def test_replayed_blocks_do_not_double_count(api: httpx.Client) -> None:
    order = create(api, confirmations=1)
    pay(api, order["id"], 1050)
    mine(api, 3)
    assert mine(api, 1)["payments_updated"] == 0  # already confirmed
    final = get(api, order["id"])
    assert final["amount_confirmed"] == 1050 and len(final["payments"]) == 1


def test_wei_amounts_survive(api: httpx.Client) -> None:
    big = 2**256 - 1
    order = create(api, amount=big, currency="ETH", confirmations=0)
    assert order["amount"] == big
    paid = pay(api, order["id"], big)["order"]
    assert paid["status"] == "paid" and paid["amount_received"] == big
    assert get(api, order["id"])["amount"] == big


def test_list_and_pagination(api: httpx.Client) -> None:
    ids = [create(api, order_id=f"list-{i}")["id"] for i in range(5)]
    api.post(f"/api/v1/orders/{ids[0]}/cancel")
    page = api.get("/api/v1/orders", params={"limit": 2}).json()
    assert [o["id"] for o in page["data"]] == ids[::-1][:2] and page["has_more"] is True
    page2 = api.get("/api/v1/orders", params={"limit": 2, "starting_after": page["data"][-1]["id"]}).json()
    assert [o["id"] for o in page2["data"]] == ids[::-1][2:4]
    canceled = api.get("/api/v1/orders", params={"status": "canceled"}).json()
    assert [o["id"] for o in canceled["data"]] == [ids[0]]
    by_ref = api.get("/api/v1/orders", params={"order_id": "list-3"}).json()
    assert [o["id"] for o in by_ref["data"]] == [ids[3]]
    created = page["data"][0]["created_at"]
    newer = api.get("/api/v1/orders", params={"created_gte": created}).json()
    assert ids[-1] in [o["id"] for o in newer["data"]]
    older = api.get("/api/v1/orders", params={"created_lt": created}).json()
    assert ids[-1] not in [o["id"] for o in older["data"]]


def test_list_filters_in_every_combination(
    api: httpx.Client, kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    """The list statement is built once per combination of filters (services/orders.py): every
    combination, with and without a cursor, in both the API's full views and the dashboard's lines,
    gives exactly the orders a plain filter of all of them gives, newest first."""
    made = [create(api, order_id=f"combo-{i}") for i in range(9)]
    for order in made[::4]:
        api.post(f"/api/v1/orders/{order['id']}/cancel").raise_for_status()
    everything = api.get("/api/v1/orders", params={"limit": 100}).json()["data"]
    assert {o["id"] for o in made} <= {o["id"] for o in everything}
    middle = made[4]["created_at"]
    choices: dict[str, list[Any]] = {
        "status": [None, "canceled"],
        "created_gte": [None, middle],
        "created_lt": [None, middle],
        "order_id": [None, "combo-1", "combo-6"],
        "starting_after": [None, made[7]["id"]],
    }
    merchant_pk = kassa.call(kassa.runtime.merchants.get(merchant[0])).pk
    for values in itertools.product(*choices.values()):
        given = {k: v for k, v in zip(choices, values, strict=True) if v is not None}
        expected = [o["id"] for o in everything]
        if "starting_after" in given:
            expected = expected[expected.index(given["starting_after"]) + 1 :]
        expected = [
            o["id"]
            for o in everything
            if o["id"] in expected
            and given.get("status", o["status"]) == o["status"]
            and given.get("order_id", o["order_id"]) == o["order_id"]
            and o["created_at"] >= given.get("created_gte", "")
            and o["created_at"] < given.get("created_lt", "~")
        ]
        listed = api.get("/api/v1/orders", params={**given, "limit": 100})
        assert [o["id"] for o in listed.json()["data"]] == expected, given
        lines, more = kassa.call(
            kassa.runtime.orders.summaries(
                merchant_pk,
                limit=100,
                starting_after=given.get("starting_after"),
                status=given.get("status"),
                created_gte=datetime.fromisoformat(given["created_gte"]) if "created_gte" in given else None,
                created_lt=datetime.fromisoformat(given["created_lt"]) if "created_lt" in given else None,
                merchant_order_id=given.get("order_id"),
            )
        )
        assert [o["id"] for o in lines] == expected and more is False, given


def test_events_written_with_the_changes(api: httpx.Client, kassa: KassaServer) -> None:
    from sqlalchemy import select

    from kassa.db.tables import events

    order = create(api, confirmations=1)
    pay(api, order["id"], 1050)
    mine(api)

    async def load() -> list[tuple[str, int, str]]:
        async with kassa.runtime.db.read() as conn:
            rows = await conn.execute(
                select(events.c.type, events.c.sequence, events.c.data)
                .where(events.c.order_id == order["id"])
                .order_by(events.c.sequence)
            )
            return [(r.type, r.sequence, r.data) for r in rows]

    rows = kassa.call(load())
    assert [(t, s) for t, s, _ in rows] == [
        ("order.created", 1),
        ("payment.received", 2),
        ("order.processing", 3),
        ("payment.confirmed", 4),
        ("order.paid", 5),
    ]
    assert rows[2][2]["status"] == "processing" and rows[4][2]["status"] == "paid"
