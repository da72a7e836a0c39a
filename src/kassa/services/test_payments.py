"""Driving the test rail: pretend payments and blocks, scoped to one merchant."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kassa.db.database import Database
from kassa.db.tables import orders, payment_methods, payments
from kassa.domain.money import MAX_AMOUNT
from kassa.domain.orders import PaymentStatus
from kassa.errors import Conflict, InvalidRequest, NotFound
from kassa.ids import new_id
from kassa.services.orders import Observation, OrderService

MAX_BLOCKS = 10_000


class TestPaymentService:
    __test__ = False  # not a pytest class

    def __init__(self, db: Database, orders_service: OrderService) -> None:
        self.db = db
        self.orders = orders_service

    async def _require_enabled(self, merchant_pk: int) -> None:
        async with self.db.read() as conn:
            enabled = (
                await conn.execute(
                    select(payment_methods.c.enabled).where(
                        payment_methods.c.merchant_pk == merchant_pk, payment_methods.c.rail == "test"
                    )
                )
            ).scalar()
        if not enabled:
            raise Conflict("the test rail is disabled for this merchant", code="test_rail_disabled")

    async def pay(self, merchant_pk: int | None, order_ref: str, amount: int) -> dict[str, Any]:
        """A test payment of `amount` minor units of the order's test quote currency.

        `merchant_pk` None means the public checkout page (test orders only)."""
        if amount <= 0 or amount >= MAX_AMOUNT:
            raise InvalidRequest("amount must be a positive integer below 2**256", param="amount")
        async with self.db.read() as conn:
            query = select(orders.c.pk, orders.c.merchant_pk, orders.c.method, orders.c.payment_methods)
            if merchant_pk is None:
                query = query.where(orders.c.id == order_ref, orders.c.test.is_(True))
            else:
                query = query.where(
                    orders.c.merchant_pk == merchant_pk,
                    (orders.c.id == order_ref) | (orders.c.merchant_order_id == order_ref),
                )
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound(f"no order {order_ref!r}", param="order")
        await self._require_enabled(row.merchant_pk)
        if "test" not in row.payment_methods:
            raise InvalidRequest("this order does not offer the test payment method", param="order")
        if row.method != "test":
            await self.orders.choose_method(row.merchant_pk, order_ref, "test")
        reference = new_id("tx")
        order = await self.orders.observe(row.pk, Observation("test", reference, amount, 0))
        payment = next(p for p in order["payments"] if p["reference"] == reference)
        return {"payment": payment, "order": order}

    async def mine(self, merchant_pk: int, count: int, order_id: str | None = None) -> dict[str, Any]:
        """Add `count` confirmations to every pending test payment of the merchant (or of one of
        its orders: the checkout page's "confirm" button)."""
        if not 1 <= count <= MAX_BLOCKS:
            raise InvalidRequest(f"count must be 1..{MAX_BLOCKS}", param="count")
        await self._require_enabled(merchant_pk)
        query = (
            select(payments.c.order_pk, payments.c.reference, payments.c.amount, payments.c.confirmations)
            .where(
                payments.c.merchant_pk == merchant_pk,
                payments.c.rail == "test",
                payments.c.status == PaymentStatus.PENDING.value,
            )
            .order_by(payments.c.pk)
        )
        if order_id is not None:
            query = query.join(orders, orders.c.pk == payments.c.order_pk).where(orders.c.id == order_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        for r in rows:
            await self.orders.observe(
                r.order_pk, Observation("test", r.reference, r.amount, r.confirmations + count)
            )
        return {"object": "test_blocks", "count": count, "payments_updated": len(rows)}

    async def reject(self, merchant_pk: int, payment_id: str) -> dict[str, Any]:
        """Drop a test payment, as if its transaction left the pool or was reorged out."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        payments.c.order_pk, payments.c.reference, payments.c.amount, payments.c.confirmations
                    ).where(
                        payments.c.merchant_pk == merchant_pk,
                        payments.c.id == payment_id,
                        payments.c.rail == "test",
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no test payment {payment_id!r}", param="id")
        order = await self.orders.observe(
            row.order_pk, Observation("test", row.reference, row.amount, row.confirmations, rejected=True)
        )
        payment = next(p for p in order["payments"] if p["id"] == payment_id)
        return {"payment": payment, "order": order}
