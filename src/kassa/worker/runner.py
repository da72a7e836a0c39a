"""The worker loop. Safe to run in several processes at once on PostgreSQL: due orders are claimed
with SKIP LOCKED and every move is idempotent, so two workers never move an order twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import delete

from kassa.db.tables import events, idempotency_keys
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
        await self.money_out()
        self._ticks += 1
        if self._ticks % 600 == 1:
            await self.prune()
        return moved

    async def money_out(self) -> None:
        """Refunds and payouts: send what is due, resume what a crash left, confirm what went out.
        The policies' pass (a query over the merchants) runs every tenth tick."""
        runtime = self.runtime
        steps: list[Callable[[], Awaitable[int]]] = [runtime.refunds.send_due, runtime.refunds.confirm_sent]
        if self._ticks % 10 == 0:
            steps.append(runtime.payouts.run_due)
        steps += [runtime.payouts.resume, runtime.payouts.confirm_sent]
        for step in steps:
            try:
                await step()
            except Exception:  # one step's trouble does not skip the others
                log.exception("worker: %s failed; retrying next pass", step.__qualname__)

    async def prune(self) -> None:
        now, settings = self.runtime.clock.now(), self.runtime.settings
        async with self.runtime.db.transaction() as tx:
            await tx.conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.created_at < now - timedelta(hours=settings.idempotency_ttl_hours)
                )
            )
            # Events go after the retention period, with their deliveries and attempt logs.
            await tx.conn.execute(
                delete(events).where(
                    events.c.created_at < now - timedelta(days=settings.event_retention_days)
                )
            )

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


async def run_all(runtime: Runtime) -> None:
    """Every background loop of one worker process: orders, webhook deliveries, email."""
    from kassa.worker.deliveries import DeliveryWorker
    from kassa.worker.emails import EmailWorker
    from kassa.worker.watchers import WatcherSupervisor

    deliveries = DeliveryWorker(runtime)
    try:
        await asyncio.gather(
            Worker(runtime).run(),
            deliveries.run(),
            EmailWorker(runtime, runtime.mailer).run(),
            WatcherSupervisor(runtime).run(),
        )
    finally:
        await deliveries.aclose()
