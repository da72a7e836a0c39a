"""Creating orders on PostgreSQL: the hot path of the API, batched into few round trips.

One statement inserts a batch of orders, their quotes, their `order.created` events and those
events' deliveries (to every enabled webhook endpoint that wants the event, computed in SQL so the
fan-out is exact, and to the order's callback URL). A single statement is atomic without
BEGIN/COMMIT. Concurrent requests share a statement (`OrderInserter`, on db/batching.py): while
one batch is in the database the next one gathers, so under load an order costs a fraction of a
round trip and of a commit, and when idle a lone order goes out at once. The rows written are
exactly those of the generic path (services/orders.py + events.emit); the suite runs both
(SQLite takes the generic path).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kassa.db.batching import Batcher
from kassa.db.database import Database, sql_json
from kassa.db.tables import orders

_ORDER_COLUMNS = ", ".join(c.name for c in orders.columns if c.name != "pk")

# Every value arrives as JSON: $1 the order rows, $2 their quotes, $3 their events, $4 callbacks.
SQL = f"""
WITH o AS (
    INSERT INTO orders ({_ORDER_COLUMNS})
    SELECT {_ORDER_COLUMNS} FROM json_populate_recordset(NULL::orders, $1::json)
    ON CONFLICT (merchant_pk, merchant_order_id) DO NOTHING
    RETURNING pk, id, merchant_pk, test, created_at
), q AS (
    INSERT INTO quotes (order_pk, method, rail, currency, amount, rate, destination, payment_uri,
                        note, expires_at, created_at)
    SELECT o.pk, x.method, x.rail, x.currency, x.amount, x.rate, x.destination, x.payment_uri,
           x.note, x.expires_at, o.created_at
    FROM json_to_recordset($2::json) AS x(order_id text, method text, rail text, currency text,
         amount numeric, rate text, destination text, payment_uri text, note text,
         expires_at timestamptz)
    JOIN o ON o.id = x.order_id
), e AS (
    INSERT INTO events (id, merchant_pk, type, object_type, object_id, order_id, sequence, data, test,
                        created_at)
    SELECT x.id, o.merchant_pk, 'order.created', 'order', o.id, o.id, 1, x.data, o.test, o.created_at
    FROM json_to_recordset($3::json) AS x(id text, order_id text, data json)
    JOIN o ON o.id = x.order_id
    RETURNING pk, merchant_pk, order_id, created_at
), d AS (
    INSERT INTO deliveries (id, merchant_pk, event_pk, endpoint_pk, url, channel, order_id, status, attempts,
                            next_attempt_at, created_at)
    SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), e.merchant_pk, e.pk, w.pk, w.url, w.id,
           e.order_id, 'pending', 0, e.created_at, e.created_at
    FROM e JOIN webhook_endpoints w ON w.merchant_pk = e.merchant_pk AND w.enabled
    WHERE w.event_types::jsonb ? '*' OR w.event_types::jsonb ? 'order.created'
    UNION ALL
    SELECT x.id, e.merchant_pk, e.pk, NULL, x.url, x.channel, e.order_id, 'pending', 0, e.created_at,
           e.created_at
    FROM e JOIN json_to_recordset($4::json) AS x(order_id text, id text, url text, channel text)
         ON x.order_id = e.order_id
    RETURNING 1
)
SELECT o.id, (SELECT count(*) FROM d) AS queued FROM o
"""  # noqa: S608


@dataclass(slots=True)
class PendingOrder:
    """One order's rows, already serialized, waiting for its batch."""

    order_id: str
    order: str  # the orders row as a JSON object
    quotes: list[str]  # quote rows as JSON objects, each with the order's id
    event: str  # the order.created event as a JSON object (its data is the order's JSON)
    callback: str | None  # the callback delivery as a JSON object, if the order has a callback URL

    @classmethod
    def build(
        cls,
        order: dict[str, Any],
        quote_rows: list[dict[str, Any]],
        event_id: str,
        event_data: str,  # the order's public JSON
        callback: tuple[str, str, str] | None,  # (delivery id, url, channel)
    ) -> PendingOrder:
        oid = order["id"]
        return cls(
            order_id=oid,
            order=sql_json(order),
            quotes=[sql_json({**q, "order_id": oid}) for q in quote_rows],
            event=f'{{"id":{json.dumps(event_id)},"order_id":{json.dumps(oid)},"data":{event_data}}}',
            callback=sql_json(
                {"order_id": oid, "id": callback[0], "url": callback[1], "channel": callback[2]}
            )
            if callback
            else None,
        )


@dataclass(frozen=True, slots=True)
class Inserted:
    created: bool  # False: the merchant's order_id was taken (by an earlier order or one in the batch)
    queued: bool  # deliveries were queued in the batch: the delivery worker should look


def _args(batch: list[PendingOrder]) -> tuple[str, str, str, str]:
    return (
        "[" + ",".join(p.order for p in batch) + "]",
        "[" + ",".join(q for p in batch for q in p.quotes) + "]",
        "[" + ",".join(p.event for p in batch) + "]",
        "[" + ",".join(p.callback for p in batch if p.callback) + "]",
    )


class OrderInserter:
    """Group commit for order creation (db/batching.py): concurrent creates share one statement."""

    def __init__(self, db: Database, *, max_batch: int = 64, max_statements: int = 4) -> None:
        self.db = db
        self._batcher: Batcher[PendingOrder, Inserted] = Batcher(
            self._execute, name="order-insert", max_batch=max_batch, max_running=max_statements
        )

    async def insert(self, item: PendingOrder) -> Inserted:
        return await self._batcher.submit(item)

    async def _execute(self, batch: list[PendingOrder]) -> list[Inserted]:
        async with self.db.driver() as driver:
            rows = await driver.fetch(SQL, *_args(batch))
        queued = bool(rows) and rows[0]["queued"] > 0
        if queued:
            self.db.committed(set())  # wakes the in-process delivery worker
        created = {row["id"] for row in rows}
        return [Inserted(created=item.order_id in created, queued=queued) for item in batch]
