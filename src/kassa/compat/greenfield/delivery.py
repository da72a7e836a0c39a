"""What the delivery worker asks of the Greenfield front: a Greenfield endpoint's message for one
delivery, and whether the endpoint wants failed deliveries retried (`automaticRedelivery`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from kassa.compat.greenfield.webhooks import body, signature
from kassa.db.tables import deliveries
from kassa.errors import NotFound
from kassa.runtime import Runtime


def _options(item: Mapping[str, Any]) -> dict[str, Any]:
    options = item.get("ep_options")
    if isinstance(options, str):  # PostgreSQL's claim reads the JSON as text
        options = json.loads(options)
    return dict(options or {})


def retries_wanted(item: Mapping[str, Any]) -> bool:
    """False for a Greenfield endpoint made with `automaticRedelivery: false`: one attempt only."""
    if item.get("endpoint_pk") is None or item.get("ep_format") != "greenfield":
        return True
    return bool(_options(item).get("automaticRedelivery", True))


async def greenfield_message(
    runtime: Runtime, item: Mapping[str, Any], secret: str
) -> tuple[bytes, dict[str, str]] | None:
    """The body and headers for a claimed delivery (worker/deliveries.py's claim row); None when
    the event has no Greenfield name or its order is gone."""
    if item["order_id"] is None:
        return None
    try:
        order, _merchant = await runtime.orders.get_public(item["order_id"])
    except NotFound:
        return None
    async with runtime.db.read() as conn:
        # A redelivery is a new delivery of the same event to the same endpoint: the first one is
        # the original (BTCPay's originalDeliveryId, isRedelivery).
        original = (
            await conn.execute(
                select(deliveries.c.id)
                .where(
                    deliveries.c.event_pk == item["event_pk"],
                    deliveries.c.endpoint_pk == item["endpoint_pk"],
                )
                .order_by(deliveries.c.pk)
                .limit(1)
            )
        ).scalar()
    data = item["data"]
    raw = body(
        kassa_type=item["type"],
        data=json.loads(data) if isinstance(data, str) else data,
        order=order,
        store_id=item["merchant_id"],
        webhook_id=item["endpoint_id"],
        delivery_id=item["id"],
        original_delivery_id=original or item["id"],
        timestamp=item["created_at"],
    )
    if raw is None:
        return None
    return raw, {"content-type": "application/json", "btcpay-sig": signature(secret, raw)}
