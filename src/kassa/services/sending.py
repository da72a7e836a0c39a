"""Sending money out exactly once (refunds and payouts, docs/payouts.md).

The rail builds and signs the transaction without broadcasting it (`prepare_send`); Kassa records
it, then asks the rail to broadcast it (`relay`). A crash anywhere leaves one of two states: nothing
recorded (nothing went out: a new transaction is built), or a recorded transaction that may or may
not have gone out. For the latter Kassa first asks the wallet whether it knows the transaction, and
only broadcasts it again if not: the same transaction broadcast twice is still one payment, since
it spends the same outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Table, select, update

from kassa.db.database import Database
from kassa.errors import Conflict
from kassa.faults import crash_point
from kassa.rails.base import CounterpartUnavailable, Prepared, Rail, RailConfig, SendRequest
from kassa.rails.registry import UnknownRail, get_rail
from kassa.services.payment_methods import PaymentMethodService


def dump(prepared: Prepared) -> str:
    return json.dumps(
        {
            "reference": prepared.reference,
            "received": str(prepared.received),
            "network_fee": str(prepared.network_fee),
            "blob": prepared.blob,
            "final": prepared.final,
        }
    )


def load(stored: str) -> Prepared:
    data = json.loads(stored)
    return Prepared(
        data["reference"], int(data["received"]), int(data["network_fee"]), data["blob"], data["final"]
    )


@dataclass(frozen=True, slots=True)
class Outbound:
    """The row (a refund, a payout) whose money goes out: where its transaction is recorded."""

    db: Database
    table: Table
    row: Mapping[str, Any]  # its pk and its recorded transaction (`prepared`), as read
    waiting: str  # the status in which it may be sent
    noun: str  # "refund", "payout": for a conflict's message and code


async def send_once(
    rail: Rail, config: RailConfig, request: SendRequest, out: Outbound, now: datetime
) -> Prepared:
    """The transaction that went out for `request`: the recorded one if the wallet knows it went
    out, else it broadcast now; or a new one, recorded (another worker's if it was first) before it
    is broadcast."""
    stored = out.row["prepared"]
    if stored is None:
        built = await rail.prepare_send(config, request)
        prepared = await record_prepared(out.db, out.table, out.row["pk"], out.waiting, built, now, out.noun)
    else:
        prepared = load(stored)
        seen = await rail.outgoing(config, prepared.reference)
        if seen.state in ("pending", "confirmed"):
            return prepared  # it went out before Kassa could record it: never again
    await rail.relay(config, prepared)
    crash_point(f"relayed:{config.rail}")
    return prepared


async def record_prepared(
    db: Database, table: Table, pk: int, waiting: str, prepared: Prepared, now: datetime, noun: str
) -> Prepared:
    """Record `prepared` on the row (a refund, a payout) that is still `waiting` and has none: the
    transaction that may go out. If another worker recorded one first, that one is returned and
    ours, never broadcast, is dropped."""
    async with db.transaction() as tx:
        kept = await tx.conn.execute(
            update(table)
            .where(table.c.pk == pk, table.c.prepared.is_(None), table.c.status == waiting)
            .values(prepared=dump(prepared), reference=prepared.reference, updated_at=now)
        )
        if kept.rowcount:
            return prepared
        row = (await tx.conn.execute(select(table.c.status, table.c.prepared).where(table.c.pk == pk))).one()
    if row.status != waiting or row.prepared is None:
        raise Conflict(f"the {noun} is {row.status}", code=f"{noun}_state")
    return load(row.prepared)


async def sent_rows(db: Database, table: Table, sent: str, limit: int) -> list[Any]:
    """The rows (refunds, payouts) whose transaction went out, longest untouched first, for the
    worker's confirmation pass."""
    async with db.read() as conn:
        return list(
            (
                await conn.execute(
                    select(table.c.merchant_pk, table.c.id, table.c.rail, table.c.reference)
                    .where(table.c.status == sent)
                    .order_by(table.c.updated_at)
                    .limit(limit)
                )
            ).all()
        )


async def settled(
    methods: PaymentMethodService, merchant_pk: int, rail_name: str, reference: str
) -> Literal["confirmed", "failed"] | None:
    """Whether a transaction Kassa sent is final (`confirmed`) or was dropped (`failed`); None while
    it is on its way, or when the rail or its wallet cannot tell now."""
    config = await methods.config(merchant_pk, rail_name, enabled_only=False)
    if config is None:
        return None
    try:
        seen = await get_rail(config.rail).outgoing(config, reference)
    except (CounterpartUnavailable, UnknownRail):
        return None
    return seen.state if seen.state in ("confirmed", "failed") else None
