"""Orders seen from a customer's session, as GNU Taler's merchant backend sees payments.

A session is the shop's name for one customer's browser (Taler's `session_id`); an order is
found by its id and its contract hash (`h_contract`, domain/contract.py) whichever merchant it
belongs to. The rule, in three parts (docs/compat/taler.md, "Sessions"):

1. **Binding.** An order that is not paid and has no session is bound to the first session it is
   polled with; an order created with a `session_id` is bound from the start. A binding never
   changes: it is written once, bumps the order's version and wakes its long polls.
2. **Paid, in a session.** A paid order is paid for a poll without a session, for a poll in the
   session it is bound to, and for every poll when it was paid before any session was bound to it
   (its payment was not session-bound). Polled in another session it is not paid: the customer has
   to prove the payment in that session, and waiting cannot change that.
3. **Already paid.** An order that is not paid, polled in session S, whose merchant has a paid
   order bound to S with the same `fulfillment_url`: that order (its merchant order id, else its
   Kassa id) is already paid, so the shop can skip a second charge.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update

from kassa.clock import Clock
from kassa.db.database import Database
from kassa.db.tables import orders
from kassa.domain.orders import OrderStatus
from kassa.errors import InvalidRequest, KassaError, NotFound
from kassa.services.orders import OrderService
from kassa.services.views import contract_hash_of

MAX_SESSION_ID = 200  # the column's length
MAX_ORDER_REF = 200  # the longer of the two id columns
PAID = OrderStatus.PAID.value


class ContractMismatch(KassaError):
    status = 403
    type = "permission_error"
    code = "contract_mismatch"


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """An order as one session sees it."""

    order: dict[str, Any]
    paid: bool
    already_paid_order_id: str | None = None

    @property
    def settled(self) -> bool:
        """Whether waiting is pointless: the order is paid here, or paid in another session (a
        binding never moves), or another order is already paid in this session."""
        return self.paid or self.order["status"] == PAID or self.already_paid_order_id is not None


def paid_in(order: dict[str, Any], session_id: str | None) -> bool:
    """Rule 2: whether the order counts as paid for a poll in `session_id` (None: no session)."""
    if order["status"] != PAID:
        return False
    return session_id is None or order["session_id"] in (None, session_id)


def check_session_id(session_id: str) -> None:
    if len(session_id) > MAX_SESSION_ID or "\x00" in session_id:
        raise InvalidRequest(
            f"session_id must be at most {MAX_SESSION_ID} characters, without NUL", param="session_id"
        )


class SessionService:
    def __init__(self, db: Database, orders_service: OrderService, clock: Clock) -> None:
        self.db = db
        self.orders = orders_service
        self.clock = clock

    async def find(self, ref: str, h_contract: bytes) -> tuple[int, str]:
        """The order whose Kassa id or merchant order id is `ref` and whose contract hash is
        `h_contract`, among every merchant's: (merchant pk, Kassa id). NotFound when no order has
        that id; ContractMismatch when none of them has that hash (each compared in constant time)."""
        rows = []
        if "\x00" not in ref and len(ref) <= MAX_ORDER_REF:
            columns = [orders.c[name] for name in _HASHED_COLUMNS]
            async with self.db.read() as conn:
                query = select(*columns).where(or_(orders.c.id == ref, orders.c.merchant_order_id == ref))
                rows = [r._mapping for r in await conn.execute(query)]
        if not rows:
            raise NotFound(f"no order {ref!r}", param="order_id")
        found = None
        for row in rows:  # all of them, so the time does not tell which one matched
            if hmac.compare_digest(contract_hash_of(row), h_contract):
                found = row
        if found is None:
            raise ContractMismatch("h_contract does not match the order", param="h_contract")
        return found["merchant_pk"], found["id"]

    async def status(self, merchant_pk: int, order_id: str, session_id: str | None) -> SessionStatus:
        """The order (by Kassa id) as a poll in `session_id` sees it, binding it first (rule 1)."""
        if session_id is not None:
            check_session_id(session_id)
        order = await self.orders.get(merchant_pk, order_id)
        if session_id is not None and order["session_id"] is None and order["status"] != PAID:
            await self.bind(merchant_pk, order_id, session_id)
            order = await self.orders.get(merchant_pk, order_id)
        if paid_in(order, session_id):
            return SessionStatus(order, paid=True)
        already = None
        if session_id is not None and order["status"] != PAID and order["fulfillment_url"] is not None:
            already = await self.already_paid(merchant_pk, order, session_id)
        return SessionStatus(order, paid=False, already_paid_order_id=already)

    async def bind(self, merchant_pk: int, order_id: str, session_id: str) -> bool:
        """Rule 1: bind an unpaid order without a session to `session_id`; False when it already
        has a session or is paid (checked in the same statement, so two polls cannot both bind)."""
        check_session_id(session_id)
        async with self.db.transaction() as tx:
            result = await tx.conn.execute(
                update(orders)
                .where(
                    orders.c.merchant_pk == merchant_pk,
                    orders.c.id == order_id,
                    orders.c.session_id.is_(None),
                    orders.c.status != PAID,
                )
                .values(session_id=session_id, version=orders.c.version + 1, updated_at=self.clock.now())
            )
            if result.rowcount:
                tx.order_changed(order_id)
            return bool(result.rowcount)

    async def already_paid(self, merchant_pk: int, order: dict[str, Any], session_id: str) -> str | None:
        """Rule 3: the merchant's latest paid order bound to `session_id` with this order's
        fulfillment URL (its merchant order id, else its Kassa id), if any."""
        query = (
            select(orders.c.id, orders.c.merchant_order_id)
            .where(
                orders.c.merchant_pk == merchant_pk,
                orders.c.session_id == session_id,
                orders.c.fulfillment_url == order["fulfillment_url"],
                orders.c.status == PAID,
                orders.c.id != order["id"],
            )
            .order_by(orders.c.paid_at.desc(), orders.c.pk.desc())
            .limit(1)
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return str(row.merchant_order_id or row.id)


_HASHED_COLUMNS = (
    "id",
    "merchant_pk",
    "merchant_order_id",
    "amount",
    "currency",
    "cart",
    "description",
    "fulfillment_url",
    "created_at",
)
