"""The core's side of a watcher: sightings become observations of the order that owns the destination."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update

from kassa.db.database import Database
from kassa.db.tables import orders, payments, quotes, rail_states, submissions
from kassa.errors import KassaError
from kassa.rails.base import RailConfig, Sighting, keychain_of
from kassa.rails.registry import get_rail
from kassa.services.orders import Observation, OrderService

log = logging.getLogger("kassa.rails")

UNSETTLED_HORIZON = timedelta(days=2)
"""How long a watcher keeps asking its counterpart about a submission whose answer Kassa missed."""


class RailReporter:
    def __init__(
        self,
        db: Database,
        orders_service: OrderService,
        config: RailConfig,
        on_pass: Callable[[], None] | None = None,
    ) -> None:
        """`on_pass` is told each time the watcher starts a pass (every watcher asks for the pending
        references once a pass): how the worker measures a watcher's lag."""
        self.db = db
        self.orders = orders_service
        self.config = config
        self.on_pass = on_pass

    async def report(self, sighting: Sighting) -> None:
        columns = (orders.c.pk, orders.c.id, orders.c.method, quotes.c.method.label("quote_method"))
        mine = (orders.c.merchant_pk == self.config.merchant_pk) & (quotes.c.rail == self.config.rail)
        async with self.db.read() as conn:
            if sighting.destination is not None:
                query = (
                    select(*columns)
                    .join(quotes, quotes.c.order_pk == orders.c.pk)
                    .where(mine, quotes.c.destination == sighting.destination)
                )
                if sighting.method is not None:  # one address, several methods: this one's quote
                    query = query.where(quotes.c.method == sighting.method)
            else:  # known by its reference: a payment seen before, or a payload submitted through us
                known = (
                    select(payments.c.order_pk)
                    .where(
                        payments.c.merchant_pk == self.config.merchant_pk,
                        payments.c.rail == self.config.rail,
                        payments.c.reference == sighting.reference,
                    )
                    .union_all(
                        select(submissions.c.order_pk).where(
                            submissions.c.merchant_pk == self.config.merchant_pk,
                            submissions.c.rail == self.config.rail,
                            submissions.c.reference == sighting.reference,
                        )
                    )
                )
                query = (
                    select(*columns)
                    .join(quotes, quotes.c.order_pk == orders.c.pk)
                    .where(mine, orders.c.pk.in_(known))
                )
            # The newest order holding the destination: an address recycled from an expired,
            # never-paid order belongs to the order it was given to last.
            row = (await conn.execute(query.order_by(orders.c.pk.desc()).limit(1))).first()
        if row is None:
            log.info(
                "%s: a transfer to %s matches no order; ignored",
                self.config.rail,
                (sighting.destination or sighting.reference)[:12],
            )
            return
        if row.method != row.quote_method:
            try:  # the customer paid a method's destination without (or after) choosing another
                await self.orders.choose_method(self.config.merchant_pk, row.id, row.quote_method)
            except KassaError as exc:
                log.warning("%s: order %s: %s", self.config.rail, row.id, exc.message)
        obs = Observation(
            self.config.rail,
            sighting.reference,
            sighting.amount,
            sighting.confirmations,
            sighting.rejected,
            sighting.replaceable,
        )
        try:
            await self.orders.observe(row.pk, obs)
        except KassaError as exc:
            log.warning("%s: order %s: %s", self.config.rail, row.id, exc.message)

    async def pending_references(self) -> set[str]:
        if self.on_pass is not None:
            self.on_pass()
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(payments.c.reference).where(
                    payments.c.merchant_pk == self.config.merchant_pk,
                    payments.c.rail == self.config.rail,
                    payments.c.status == "pending",
                )
            )
            return {r.reference for r in rows}

    async def derived(self) -> int:
        keychain = keychain_of(get_rail(self.config.rail), self.config)
        if keychain is None:
            return 0
        return await self.orders.addresses.next_index(keychain.key_id)

    async def submitted_references(self) -> set[str]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(submissions.c.reference).where(
                    submissions.c.merchant_pk == self.config.merchant_pk,
                    submissions.c.rail == self.config.rail,
                    submissions.c.status.in_(("in_flight", "failed")),
                    submissions.c.created_at >= self.orders.clock.now() - UNSETTLED_HORIZON,
                    ~select(payments.c.pk)
                    .where(
                        payments.c.merchant_pk == submissions.c.merchant_pk,
                        payments.c.rail == submissions.c.rail,
                        payments.c.reference == submissions.c.reference,
                    )
                    .exists(),
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
