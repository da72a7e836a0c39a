"""The transactional outbox: every state change writes its event in the change's own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kassa.db.tables import events
from kassa.ids import new_id


async def emit(
    conn: AsyncConnection,
    *,
    merchant_pk: int,
    type: str,
    object_type: str,
    object_id: str,
    order_id: str | None,
    sequence: int,
    data: dict[str, Any],
    test: bool,
    now: datetime,
) -> str:
    event_id = new_id("evt")
    await conn.execute(
        insert(events).values(
            id=event_id,
            merchant_pk=merchant_pk,
            type=type,
            object_type=object_type,
            object_id=object_id,
            order_id=order_id,
            sequence=sequence,
            data=data,
            test=test,
            created_at=now,
        )
    )
    return event_id
