"""Wake long-poll waiters when an order changes, with no database polling per waiter.

Within one process the database's commit hook publishes directly. Across processes, PostgreSQL
carries `NOTIFY kassa_orders, '<order id>'` (sent by the committing transaction) to a single
`LISTEN` connection per process; on SQLite, where a separate worker process may write, one shared
query per second checks the versions of the orders that currently have waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator

import asyncpg
from sqlalchemy import select

from kassa.db.database import Database
from kassa.db.tables import orders

log = logging.getLogger("kassa.changes")


class OrderChangeHub:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._versions: dict[str, int] = {}

    def publish(self, order_ids: Iterable[str]) -> None:
        for order_id in order_ids:
            for fut in self._waiters.pop(order_id, ()):
                if not fut.done():
                    fut.set_result(None)
            self._versions.pop(order_id, None)

    @contextlib.contextmanager
    def subscription(self, order_id: str, version: int | None = None) -> Iterator[asyncio.Future[None]]:
        """Register interest before reading the order, so a change in between is not missed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(order_id, set()).add(fut)
        if version is not None:
            self._versions[order_id] = version
        try:
            yield fut
        finally:
            waiters = self._waiters.get(order_id)
            if waiters is not None:
                waiters.discard(fut)
                if not waiters:
                    self._waiters.pop(order_id, None)
                    self._versions.pop(order_id, None)

    def watched(self) -> dict[str, int]:
        return dict(self._versions)

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())


class ChangeFeed:
    """Feeds the hub from other processes (PostgreSQL LISTEN, or a shared SQLite check)."""

    def __init__(
        self,
        db: Database,
        hub: OrderChangeHub,
        interval: float = 1.0,
        on_rail_notice: Callable[[int, str], None] | None = None,
    ) -> None:
        self.db = db
        self.hub = hub
        self.on_rail_notice = on_rail_notice
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        runner = self._listen_postgres if self.db.is_postgres else self._poll_sqlite
        self._task = asyncio.create_task(runner(), name="kassa-change-feed")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen_postgres(self) -> None:
        dsn = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(dsn)
                lost = asyncio.Event()
                await conn.add_listener(
                    "kassa_orders", lambda _c, _pid, _ch, payload: self.hub.publish([payload])
                )
                conn.add_termination_listener(lambda _c, event=lost: event.set())
                if self.on_rail_notice is not None:
                    await conn.add_listener("kassa_rails", self._rail_notice)
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep listening through database restarts
                log.warning("change feed: LISTEN failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()

    def _rail_notice(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        merchant_pk, _, rail = payload.partition(":")
        if self.on_rail_notice is not None and merchant_pk.isdigit():
            self.on_rail_notice(int(merchant_pk), rail)

    async def _poll_sqlite(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            watched = self.hub.watched()
            if not watched:
                continue
            try:
                async with self.db.read() as conn:
                    rows = await conn.execute(
                        select(orders.c.id, orders.c.version).where(orders.c.id.in_(list(watched)))
                    )
                    changed = [r.id for r in rows if r.version != watched.get(r.id)]
            except Exception as exc:
                log.warning("change feed: check failed (%s)", type(exc).__name__)
                continue
            if changed:
                self.hub.publish(changed)
