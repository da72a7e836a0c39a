"""Batched order creation on PostgreSQL (db/order_insert.py): concurrent orders share statements,
and sharing changes nothing about what each order gets."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select, update

from kassa.db.order_insert import Inserted, OrderInserter, PendingOrder
from kassa.db.tables import deliveries, events, merchants, orders, quotes
from kassa.errors import Conflict
from kassa.services.orders import CreateResult, NewOrder
from tests.support.server import KassaServer


def _pg(kassa: KassaServer) -> OrderInserter:
    inserter = kassa.runtime.orders.inserter
    if inserter is None:
        pytest.skip("orders are inserted in batches on PostgreSQL only")
    return inserter


def _merchant_pk(kassa: KassaServer, merchant_id: str) -> int:
    """The merchant's pk, after one order (so the merchant's settings are cached, as under load)."""

    async def lookup() -> int:
        async with kassa.runtime.db.read() as conn:
            pk = (
                await conn.execute(select(merchants.c.pk).where(merchants.c.id == merchant_id))
            ).scalar_one()
        await kassa.runtime.orders.create(int(pk), NewOrder("USD", 1))
        return int(pk)

    return kassa.call(lookup())


def _recording(inserter: OrderInserter, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    batcher = inserter._batcher
    run = batcher._run

    async def recorded(batch: list[PendingOrder]) -> Sequence[Inserted]:
        sizes.append(len(batch))
        return await run(batch)

    monkeypatch.setattr(batcher, "_run", recorded)
    return sizes


async def _create_all(kassa: KassaServer, merchant_pk: int, reqs: list[NewOrder]) -> list[Any]:
    return await asyncio.gather(
        *(kassa.runtime.orders.create(merchant_pk, r) for r in reqs), return_exceptions=True
    )


async def _count(kassa: KassaServer, table: Any, order_ids: list[str]) -> int:
    async with kassa.runtime.db.read() as conn:
        if table is orders:
            where = orders.c.id.in_(order_ids)
            query = select(func.count()).select_from(orders).where(where)
        elif table is events:
            query = select(func.count()).select_from(events).where(events.c.order_id.in_(order_ids))
        elif table is deliveries:
            query = select(func.count()).select_from(deliveries).where(deliveries.c.order_id.in_(order_ids))
        else:
            query = (
                select(func.count())
                .select_from(quotes.join(orders, orders.c.pk == quotes.c.order_pk))
                .where(orders.c.id.in_(order_ids))
            )
        return int((await conn.execute(query)).scalar_one())


def test_concurrent_orders_share_statements_and_each_gets_its_rows(
    kassa: KassaServer, merchant: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pk = _merchant_pk(kassa, merchant[0])
    sizes = _recording(_pg(kassa), monkeypatch)
    amounts = [2**256 - 1 - i for i in range(150)]  # exact to the last digit, in a batch too
    results = kassa.call(_create_all(kassa, pk, [NewOrder(currency="USD", amount=a) for a in amounts]))
    assert all(isinstance(r, CreateResult) and r.created for r in results)
    ids = [r.order["id"] for r in results]
    assert len(set(ids)) == 150
    assert sum(sizes) == 150 and max(sizes) > 1  # they really were batched
    for table in (orders, quotes, events):
        assert kassa.call(_count(kassa, table, ids)) == 150
    stored = kassa.call(kassa.runtime.orders.get(pk, ids[-1]))
    assert stored["amount"] == amounts[-1] == results[-1].order["amount"]


def test_the_same_order_id_twice_in_one_batch(
    kassa: KassaServer, merchant: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pk = _merchant_pk(kassa, merchant[0])
    sizes = _recording(_pg(kassa), monkeypatch)
    same = NewOrder(currency="USD", amount=500, merchant_order_id="dup-1")
    other = NewOrder(currency="USD", amount=501, merchant_order_id="dup-1")
    results = kassa.call(_create_all(kassa, pk, [same, same, same, other, *[NewOrder("USD", 7)] * 10]))
    assert max(sizes) > 1
    # Concurrent requests: whichever body reaches the database first makes the one order dup-1; the
    # requests with that body get it back, the others a Conflict (which one wins is a race).
    winners = [r for r in results[:4] if isinstance(r, CreateResult)]
    assert sum(r.created for r in winners) == 1 and len({r.order["id"] for r in winners}) == 1, results[:4]
    won_with = winners[0].order["amount"]
    for request, result in zip([same, same, same, other], results[:4], strict=True):
        if request.amount == won_with:
            assert isinstance(result, CreateResult), result
        else:
            assert isinstance(result, Conflict), result
    assert all(isinstance(r, CreateResult) and r.created for r in results[4:])


def test_one_order_the_database_refuses_fails_only_its_own_request(
    kassa: KassaServer, merchant: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pk = _merchant_pk(kassa, merchant[0])
    sizes = _recording(_pg(kassa), monkeypatch)
    # The API bounds session_id to 200 characters; the service alone does not, the column does.
    bad = NewOrder(currency="USD", amount=5, session_id="s" * 300)
    reqs = [*[NewOrder("USD", 9)] * 10, bad, *[NewOrder("USD", 9)] * 10]
    results = kassa.call(_create_all(kassa, pk, reqs))
    assert isinstance(results[10], Exception) and not isinstance(results[10], CreateResult)
    good = [r for i, r in enumerate(results) if i != 10]
    assert all(isinstance(r, CreateResult) and r.created for r in good)
    ids = [r.order["id"] for r in good if isinstance(r, CreateResult)]
    assert kassa.call(_count(kassa, orders, ids)) == 20
    assert max(sizes) > 1 and sizes.count(1) >= max(sizes) - 1  # the failed batch went one by one


def test_batched_orders_queue_their_deliveries(
    kassa: KassaServer, merchant: tuple[str, str], monkeypatch: pytest.MonkeyPatch, api: Any
) -> None:
    inserter = _pg(kassa)
    endpoint = api.post(
        "/api/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook", "event_types": ["order.created"]}
    )
    endpoint.raise_for_status()
    skipped = api.post(
        "/api/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/other", "event_types": ["order.paid"]}
    )
    skipped.raise_for_status()
    pk = _merchant_pk(kassa, merchant[0])
    sizes = _recording(inserter, monkeypatch)
    reqs = [
        NewOrder("USD", 100 + i, callback_url="http://127.0.0.1:9/cb" if i % 2 else None) for i in range(40)
    ]
    results = kassa.call(_create_all(kassa, pk, reqs))
    ids = [r.order["id"] for r in results if isinstance(r, CreateResult)]
    assert len(ids) == 40 and max(sizes) > 1
    # one per order to the endpoint that wants order.created, one per order with a callback URL
    assert kassa.call(_count(kassa, deliveries, ids)) == 40 + 20
    kassa.call(_cancel_deliveries(kassa, ids))  # nobody listens on port 9: keep later tests' queues clean


async def _cancel_deliveries(kassa: KassaServer, order_ids: list[str]) -> None:
    async with kassa.runtime.db.transaction() as tx:
        await tx.conn.execute(
            update(deliveries).where(deliveries.c.order_id.in_(order_ids)).values(status="canceled")
        )
