"""Creating an order on PostgreSQL in one statement: the hot path of the API.

One prepared statement inserts the order, its quotes, its `order.created` event and that event's
deliveries (to every enabled webhook endpoint that wants it, computed in SQL so the fan-out is exact,
and to the callback URL). A single statement is atomic without BEGIN/COMMIT, so an order costs one
database round trip. It writes exactly the rows the generic path (services/orders.py + events.emit)
writes; the suite runs both (SQLite takes the generic path).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer
from sqlalchemy.types import TypeEngine

from kassa.db.database import Database
from kassa.db.tables import orders
from kassa.db.types import Amount, UTCDateTime


def _cast(column_type: TypeEngine[Any]) -> str:
    if isinstance(column_type, Amount):
        return "numeric"
    if isinstance(column_type, JSON):
        return "json"
    if isinstance(column_type, UTCDateTime):
        return "timestamptz"
    if isinstance(column_type, Boolean):
        return "boolean"
    if isinstance(column_type, Integer):
        return "integer"
    if isinstance(column_type, Float):
        return "float8"
    return "text"


_ORDER_COLUMNS = [c for c in orders.columns if c.name != "pk"]
_N = len(_ORDER_COLUMNS)

# Built once from the schema's own column names; every value is a bound parameter.
SQL = f"""
WITH o AS (
    INSERT INTO orders ({", ".join(c.name for c in _ORDER_COLUMNS)})
    VALUES ({", ".join(f"${i + 1}::{_cast(c.type)}" for i, c in enumerate(_ORDER_COLUMNS))})
    RETURNING pk
), q AS (
    INSERT INTO quotes (order_pk, method, rail, currency, amount, rate, destination, payment_uri,
                        expires_at, created_at)
    SELECT o.pk, x.method, x.rail, x.currency, x.amount::numeric, x.rate, x.destination, x.payment_uri,
           x.expires_at::timestamptz, ${_N + 1}::timestamptz
    FROM o, json_to_recordset(${_N + 2}::json) AS x(method text, rail text, currency text, amount text,
         rate text, destination text, payment_uri text, expires_at text)
), e AS (
    INSERT INTO events (id, merchant_pk, type, object_type, object_id, order_id, sequence, data, test,
                        created_at)
    SELECT ${_N + 3}::text, ${_N + 4}::bigint, 'order.created', 'order', ${_N + 5}::text, ${_N + 5}::text, 1,
           ${_N + 6}::json, ${_N + 7}::boolean, ${_N + 1}::timestamptz
    FROM o
    RETURNING pk
), d AS (
    INSERT INTO deliveries (id, merchant_pk, event_pk, endpoint_pk, url, channel, order_id, status, attempts,
                            next_attempt_at, created_at)
    SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), ${_N + 4}::bigint, e.pk, w.pk, w.url, w.id,
           ${_N + 5}::text, 'pending', 0, ${_N + 1}::timestamptz, ${_N + 1}::timestamptz
    FROM e JOIN webhook_endpoints w ON w.merchant_pk = ${_N + 4}::bigint AND w.enabled
    WHERE w.event_types::jsonb ? '*' OR w.event_types::jsonb ? 'order.created'
    UNION ALL
    SELECT ${_N + 8}::text, ${_N + 4}::bigint, e.pk, NULL, ${_N + 9}::text, ${_N + 10}::text, ${_N + 5}::text,
           'pending', 0, ${_N + 1}::timestamptz, ${_N + 1}::timestamptz
    FROM e WHERE ${_N + 9}::text IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM d)
"""  # noqa: S608


def _arg(value: Any, cast: str) -> Any:
    if value is None:
        return None
    if cast == "numeric":
        return Decimal(value)
    if cast == "json":
        return json.dumps(value)
    return value


_CASTS = [_cast(c.type) for c in _ORDER_COLUMNS]


async def insert_order_pg(
    db: Database,
    order: dict[str, Any],
    quote_rows: list[dict[str, Any]],
    event_id: str,
    event_data: str,  # the order's JSON
    callback: tuple[str, str, str] | None,  # (delivery id, url, channel)
) -> int:
    """Insert everything; returns how many deliveries were queued. Raises asyncpg's
    UniqueViolationError when the merchant's order_id is taken."""
    args = [_arg(order[c.name], cast) for c, cast in zip(_ORDER_COLUMNS, _CASTS, strict=True)]
    quotes_json = json.dumps(
        [{**q, "amount": str(q["amount"]), "expires_at": q["expires_at"].isoformat()} for q in quote_rows],
        default=str,
    )
    args += [
        order["created_at"],
        quotes_json,
        event_id,
        order["merchant_pk"],
        order["id"],
        event_data,
        order["test"],
        callback[0] if callback else None,
        callback[1] if callback else None,
        callback[2] if callback else None,
    ]
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        queued = await driver.fetchval(SQL, *args)
    return int(queued)
