"""The core's side of a watcher: sightings become observations of the order that owns the destination."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import insert, select, update

from kassa.db.database import Database
from kassa.db.tables import orders, payments, quotes, rail_states
from kassa.errors import KassaError
from kassa.rails.base import RailConfig, Sighting
from kassa.services.orders import Observation, OrderService

log = logging.getLogger("kassa.rails")


class RailReporter:
    def __init__(self, db: Database, orders_service: OrderService, config: RailConfig) -> None:
        self.db = db
        self.orders = orders_service
        self.config = config

    async def report(self, sighting: Sighting) -> None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(orders.c.pk, orders.c.id, orders.c.method, quotes.c.method.label("quote_method"))
                    .join(quotes, quotes.c.order_pk == orders.c.pk)
                    .where(
                        orders.c.merchant_pk == self.config.merchant_pk,
                        quotes.c.rail == self.config.rail,
                        quotes.c.destination == sighting.destination,
                    )
                )
            ).first()
        if row is None:
            log.info(
                "%s: a transfer to %s matches no order; ignored", self.config.rail, sighting.destination[:12]
            )
            return
        if row.method != row.quote_method:
            try:  # the customer paid a method's destination without (or after) choosing another
                await self.orders.choose_method(self.config.merchant_pk, row.id, row.quote_method)
            except KassaError as exc:
                log.warning("%s: order %s: %s", self.config.rail, row.id, exc.message)
        obs = Observation(
            self.config.rail, sighting.reference, sighting.amount, sighting.confirmations, sighting.rejected
        )
        try:
            await self.orders.observe(row.pk, obs)
        except KassaError as exc:
            log.warning("%s: order %s: %s", self.config.rail, row.id, exc.message)

    async def pending_references(self) -> set[str]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(payments.c.reference).where(
                    payments.c.merchant_pk == self.config.merchant_pk,
                    payments.c.rail == self.config.rail,
                    payments.c.status == "pending",
                )
            )
            return {r.reference for r in rows}

    async def load_state(self) -> dict[str, Any]:
        async with self.db.read() as conn:
            state = (
                await conn.execute(
                    select(rail_states.c.state).where(
                        rail_states.c.merchant_pk == self.config.merchant_pk,
                        rail_states.c.rail == self.config.rail,
                    )
                )
            ).scalar()
        return dict(state) if state else {}

    async def save_state(self, state: dict[str, Any]) -> None:
        async with self.db.transaction() as tx:
            where = (rail_states.c.merchant_pk == self.config.merchant_pk) & (
                rail_states.c.rail == self.config.rail
            )
            now = self.orders.clock.now()
            result = await tx.conn.execute(
                update(rail_states).where(where).values(state=state, updated_at=now)
            )
            if result.rowcount == 0:
                await tx.conn.execute(
                    insert(rail_states).values(
                        merchant_pk=self.config.merchant_pk,
                        rail=self.config.rail,
                        state=state,
                        updated_at=now,
                    )
                )
