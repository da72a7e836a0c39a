"""Addresses derived from merchants' public keys: which index each order got, and which come next.

A rail with a :class:`~kassa.rails.base.Keychain` (Bitcoin's xpub, later EVM's) derives addresses;
the core hands out the indexes. Allocation is one short transaction: bump the key's counter (an
upsert that row-locks it on PostgreSQL; SQLite's writers are serialized) and record the address
with the order that got it, so an index is never handed out twice, even to two merchants who
configured the same key. With `recycle` on, a merchant's address whose order expired (or was
canceled) without any payment, and whose monitoring window has passed too, is given out again
before a new index is used: the merchant's own wallet then has fewer empty addresses to look past.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kassa.clock import Clock
from kassa.db.database import Database
from kassa.db.tables import address_keys, derived_addresses, orders, payments
from kassa.domain.orders import OrderStatus
from kassa.rails.base import Keychain

MAX_INDEX = 2**31 - 1
"""The last non-hardened child index: a public key derives no further."""
RECYCLE_CANDIDATES = 20
"""Closed, never-paid orders looked at per allocation (the oldest addresses first)."""


class KeyExhausted(Exception):
    """Every non-hardened index of this key was handed out."""


@dataclass(frozen=True, slots=True)
class Allocated:
    index: int
    address: str
    uses: int  # 1 for a fresh index, more when recycled


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """How far Kassa went along a key, for the merchant's wallet (its gap limit)."""

    next_index: int  # indexes handed out so far, all merchants sharing the key together
    last_paid_index: int | None  # the highest index of this merchant's that received a payment
    gap: int  # unpaid indexes after it: the merchant's wallet must look at least this far ahead
    recycled: int  # allocations that reused an address


class AddressBook:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def allocate(self, keychain: Keychain, rail: str, merchant_pk: int, order_id: str) -> Allocated:
        """An address for `order_id`: a recycled one when the keychain allows it, else the next index."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            key_pk = await self._key_pk(tx.conn, keychain.key_id, rail)
            if keychain.recycle:
                reused = await self._recycle(tx.conn, key_pk, merchant_pk, order_id)
                if reused is not None:
                    return reused
            index = await self._bump(tx.conn, key_pk)
            if index > MAX_INDEX:
                raise KeyExhausted(f"every address of key {keychain.key_id[:12]}... was handed out")
            address = keychain.derive(index)
            await tx.conn.execute(
                derived_addresses.insert().values(
                    key_pk=key_pk,
                    derivation_index=index,
                    address=address,
                    merchant_pk=merchant_pk,
                    order_id=order_id,
                    uses=1,
                    allocated_at=now,
                )
            )
            return Allocated(index, address, 1)

    async def next_index(self, key_id: str) -> int:
        async with self.db.read() as conn:
            value = (
                await conn.execute(select(address_keys.c.next_index).where(address_keys.c.key_id == key_id))
            ).scalar()
        return int(value or 0)

    async def index_of(self, key_id: str, address: str) -> int | None:
        """The derivation index of an address handed out from this key (a sweep spends with it)."""
        async with self.db.read() as conn:
            value = (
                await conn.execute(
                    select(derived_addresses.c.derivation_index)
                    .join(address_keys, address_keys.c.pk == derived_addresses.c.key_pk)
                    .where(address_keys.c.key_id == key_id, derived_addresses.c.address == address)
                )
            ).scalar()
        return None if value is None else int(value)

    async def usage(self, key_id: str, merchant_pk: int) -> KeyUsage:
        async with self.db.read() as conn:
            columns = (address_keys.c.pk, address_keys.c.next_index)
            key = (await conn.execute(select(*columns).where(address_keys.c.key_id == key_id))).first()
            if key is None:
                return KeyUsage(0, None, 0, 0)
            mine = (derived_addresses.c.key_pk == key.pk) & (derived_addresses.c.merchant_pk == merchant_pk)
            paid = (
                select(payments.c.pk)
                .join(orders, orders.c.pk == payments.c.order_pk)
                .where(orders.c.id == derived_addresses.c.order_id)
                .exists()
            )
            last_paid = (
                await conn.execute(select(func.max(derived_addresses.c.derivation_index)).where(mine, paid))
            ).scalar()
            reuses = func.coalesce(func.sum(derived_addresses.c.uses - 1), 0)
            recycled = (await conn.execute(select(reuses).where(mine))).scalar()
        gap = key.next_index - (last_paid + 1 if last_paid is not None else 0)
        return KeyUsage(key.next_index, last_paid, gap, int(recycled or 0))

    # ----- steps of an allocation ------------------------------------------------------------

    async def _key_pk(self, conn: AsyncConnection, key_id: str, rail: str) -> int:
        query = select(address_keys.c.pk).where(address_keys.c.key_id == key_id)
        pk = (await conn.execute(query)).scalar()
        if pk is not None:
            return int(pk)
        insert = pg_insert if self.db.is_postgres else sqlite_insert
        await conn.execute(
            insert(address_keys)
            .values(key_id=key_id, rail=rail, next_index=0, created_at=self.clock.now())
            .on_conflict_do_nothing(index_elements=["key_id"])
        )
        return int((await conn.execute(query)).scalar_one())

    @staticmethod
    async def _bump(conn: AsyncConnection, key_pk: int) -> int:
        """Take the key's next index (the UPDATE holds the row until commit: one at a time)."""
        result = await conn.execute(
            update(address_keys)
            .where(address_keys.c.pk == key_pk)
            .values(next_index=address_keys.c.next_index + 1)
            .returning(address_keys.c.next_index)
        )
        return int(result.scalar_one()) - 1

    async def _recycle(
        self, conn: AsyncConnection, key_pk: int, merchant_pk: int, order_id: str
    ) -> Allocated | None:
        now = self.clock.now()
        closed = (OrderStatus.EXPIRED.value, OrderStatus.CANCELED.value)
        any_payment = select(payments.c.pk).where(payments.c.order_pk == orders.c.pk).exists()
        rows = (
            await conn.execute(
                select(
                    derived_addresses.c.pk,
                    derived_addresses.c.derivation_index,
                    derived_addresses.c.address,
                    derived_addresses.c.order_id,
                    derived_addresses.c.uses,
                    orders.c.expires_at,
                    orders.c.closed_at,
                    orders.c.monitoring_window,
                )
                .join(orders, orders.c.id == derived_addresses.c.order_id)
                .where(
                    derived_addresses.c.key_pk == key_pk,
                    derived_addresses.c.merchant_pk == merchant_pk,
                    orders.c.status.in_(closed),
                    orders.c.amount_received == 0,
                    ~any_payment,
                )
                .order_by(derived_addresses.c.derivation_index)
                .limit(RECYCLE_CANDIDATES)
            )
        ).all()
        for row in rows:
            if not _quiet_since(row._mapping, now):
                continue
            moved = await conn.execute(
                update(derived_addresses)
                .where(derived_addresses.c.pk == row.pk, derived_addresses.c.order_id == row.order_id)
                .values(order_id=order_id, uses=row.uses + 1, allocated_at=now)
            )
            if moved.rowcount:
                return Allocated(int(row.derivation_index), row.address, row.uses + 1)
        return None


def _quiet_since(row: Mapping[Any, Any], now: datetime) -> bool:
    """The closed order's monitoring window is over: a late payment to it can no longer arrive
    for it, so its address may go to another order."""
    closed_at = row["closed_at"] or row["expires_at"]
    return bool(closed_at + timedelta(seconds=row["monitoring_window"]) <= now)
