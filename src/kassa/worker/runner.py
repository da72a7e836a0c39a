"""The worker loop. Safe to run in several processes at once on PostgreSQL: due orders are claimed
with SKIP LOCKED and every move is idempotent, so two workers never move an order twice."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import delete

from kassa.db.tables import idempotency_keys
from kassa.runtime import Runtime

log = logging.getLogger("kassa.worker")


class Worker:
    def __init__(self, runtime: Runtime, interval: float | None = None) -> None:
        self.runtime = runtime
        self.interval = interval if interval is not None else runtime.settings.worker_interval
        self._ticks = 0

    async def run_once(self) -> int:
        """One pass; returns how many orders moved."""
        moved = 0
        while True:
            due = await self.runtime.orders.due()
            batch = 0
            for pk in due:
                if await self.runtime.orders.refresh(pk):
                    batch += 1
            moved += batch
            if len(due) < 200 or batch == 0:
                break
        self._ticks += 1
        if self._ticks % 600 == 1:
            await self.prune()
        return moved

    async def prune(self) -> None:
        cutoff = self.runtime.clock.now() - timedelta(hours=self.runtime.settings.idempotency_ttl_hours)
        async with self.runtime.db.transaction() as tx:
            await tx.conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff))

    async def run(self) -> None:
        log.info("worker started (interval %.1fs)", self.interval)
        while True:
            try:
                moved = await self.run_once()
                if moved:
                    log.info("worker moved %d order(s)", moved)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker pass failed; retrying")
            await asyncio.sleep(self.interval)
