"""Delivers the outbox: signed webhooks and callbacks, at least once, in per-order sequence.

A delivery is claimed by taking a lease on its row (`FOR UPDATE SKIP LOCKED` on PostgreSQL; the
`BEGIN IMMEDIATE` write lock on SQLite), sent outside any transaction, and settled only by the lease
holder. A worker that dies mid-send leaves a lease that runs out; another worker then sends again,
with the same `webhook-id`, so receivers can recognise the duplicate.

Per target (an endpoint, or a callback URL) the events of one order go out one at a time, in order:
a delivery is due only when no earlier delivery of the same order to the same target is pending.
Each target has its own small cap of in-flight sends, so a slow or failing endpoint only slows itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from kassa.db.tables import deliveries, delivery_attempts, events, merchants, webhook_endpoints
from kassa.ids import new_id
from kassa.notify.email import WebhookDisabledContext, render_webhook_disabled
from kassa.notify.outbound import DeliveryAttempt, OutboundClient, deliver
from kassa.notify.schedule import next_attempt_delay
from kassa.notify.signing import new_secret, sign_headers
from kassa.runtime import Runtime
from kassa.services.events import queue_email
from kassa.services.views import iso

log = logging.getLogger("kassa.deliveries")


class DeliveryWorker:
    def __init__(
        self, runtime: Runtime, client: OutboundClient | None = None, rng: random.Random | None = None
    ):
        self.runtime = runtime
        settings = runtime.settings
        self.client = client or OutboundClient(verify=True)
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not security)
        self.concurrency = settings.webhook_concurrency
        self.per_target = settings.webhook_per_target
        self.lease = timedelta(seconds=settings.webhook_lease_seconds)
        self._in_flight: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._opened: dict[str, str] = {}  # sealed secret -> secret

    def wake(self, _changed: object = None) -> None:
        self._wake.set()

    async def run(self, idle: float = 0.5) -> None:
        self.runtime.db.on_commit.append(self.wake)
        try:
            while True:
                # Cleared before the pass: a commit or a finished send during it wakes the next wait.
                self._wake.clear()
                try:
                    started = await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("delivery pass failed; retrying")
                    started = 0
                if not started:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), idle)
                else:
                    await asyncio.sleep(0)
        finally:
            self.runtime.db.on_commit.remove(self.wake)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run_once(self) -> int:
        """Claim what is due (within the free capacity) and start sending; returns how many."""
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            return 0
        claimed = await self._claim(free)
        for item in claimed:
            self._in_flight[item["channel"]] += 1
            task = asyncio.create_task(self._send(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    async def drain(self) -> None:
        """Run passes until nothing is due or in flight (tests, benchmarks)."""
        while True:
            started = await self.run_once()
            if self._tasks:
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            elif not started:
                return

    async def _claim(self, limit: int) -> list[dict[str, Any]]:
        db, now = self.runtime.db, self.runtime.clock.now()
        earlier = aliased(deliveries)
        # Due deliveries, at most `per_target` per target, so one target's backlog cannot fill the
        # window and hide other targets' work; only the first pending one of an order per target.
        ranked = (
            select(
                deliveries.c.pk,
                func.row_number()
                .over(
                    partition_by=deliveries.c.channel,
                    order_by=(deliveries.c.next_attempt_at, deliveries.c.pk),
                )
                .label("rank"),
            )
            .where(
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at <= now,
                or_(deliveries.c.leased_until.is_(None), deliveries.c.leased_until < now),
                ~exists().where(
                    and_(
                        earlier.c.channel == deliveries.c.channel,
                        earlier.c.order_id == deliveries.c.order_id,
                        earlier.c.status == "pending",
                        earlier.c.pk < deliveries.c.pk,
                    )
                ),
            )
            .subquery()
        )
        query = (
            select(deliveries.c.pk, deliveries.c.channel)
            .where(deliveries.c.pk.in_(select(ranked.c.pk).where(ranked.c.rank <= self.per_target)))
            .order_by(deliveries.c.next_attempt_at, deliveries.c.pk)
            .limit(limit * 4)
        )
        if db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        lease = new_id("lse")
        async with db.transaction() as tx:
            rows = (await tx.conn.execute(query)).all()
            chosen: list[int] = []
            taken: Counter[str] = Counter()
            for row in rows:
                if len(chosen) >= limit:
                    break
                if self._in_flight[row.channel] + taken[row.channel] >= self.per_target:
                    continue
                taken[row.channel] += 1
                chosen.append(row.pk)
            if not chosen:
                return []
            await tx.conn.execute(
                update(deliveries)
                .where(deliveries.c.pk.in_(chosen))
                .values(leased_until=now + self.lease, lease=lease)
            )
            items = await tx.conn.execute(
                select(
                    deliveries.c.pk,
                    deliveries.c.id,
                    deliveries.c.url,
                    deliveries.c.channel,
                    deliveries.c.attempts,
                    deliveries.c.endpoint_pk,
                    deliveries.c.merchant_pk,
                    events.c.id.label("event_id"),
                    events.c.type,
                    events.c.created_at,
                    events.c.sequence,
                    events.c.order_id,
                    events.c.test,
                    events.c.data,
                    # What signing needs comes with the claim: no lookup per send.
                    webhook_endpoints.c.enabled.label("ep_enabled"),
                    webhook_endpoints.c.secret,
                    webhook_endpoints.c.previous_secret,
                    webhook_endpoints.c.previous_secret_expires_at,
                    webhook_endpoints.c.failing_since.label("ep_failing_since"),
                    merchants.c.callback_secret,
                )
                .join(events, events.c.pk == deliveries.c.event_pk)
                .outerjoin(webhook_endpoints, webhook_endpoints.c.pk == deliveries.c.endpoint_pk)
                .join(merchants, merchants.c.pk == deliveries.c.merchant_pk)
                .where(deliveries.c.pk.in_(chosen))
                .order_by(deliveries.c.pk)
            )
            return [{**dict(r._mapping), "lease": lease} for r in items]

    async def _send(self, item: dict[str, Any]) -> None:
        try:
            async with self._slots:
                secrets = await self._secrets(item)
                body = json.dumps(
                    {
                        "id": item["event_id"],
                        "type": item["type"],
                        "timestamp": iso(item["created_at"]),
                        "sequence": item["sequence"],
                        "order": item["order_id"],
                        "test": item["test"],
                        "data": item["data"],
                    },
                    separators=(",", ":"),
                ).encode()
                if secrets is None:
                    attempt = DeliveryAttempt(None, False, 0, "", "endpoint deleted or disabled", None, False)
                else:
                    headers = {
                        "content-type": "application/json",
                        # Wall-clock time, not the scheduling clock: receivers check it against theirs.
                        **sign_headers(secrets, item["event_id"], datetime.now(UTC), body),
                    }
                    attempt = await deliver(
                        self.client,
                        item["url"],
                        body,
                        headers,
                        allow_private=self.runtime.settings.allow_private_webhooks,
                        timeout=self.runtime.settings.webhook_timeout,
                    )
                await self._settle(item, attempt, give_up=secrets is None)
        except Exception:
            log.exception(
                "delivery %s failed unexpectedly; its lease will run out and it will be retried", item["id"]
            )
        finally:
            self._in_flight[item["channel"]] -= 1
            self._wake.set()  # capacity freed: this target (or another) may have work due

    def _open(self, sealed: str) -> str:
        plain = self._opened.get(sealed)
        if plain is None:
            if len(self._opened) > 10_000:
                self._opened.clear()
            plain = self._opened[sealed] = self.runtime.box.open(sealed)
        return plain

    async def _secrets(self, item: dict[str, Any]) -> list[str] | None:
        box, now = self.runtime.box, self.runtime.clock.now()
        if item["endpoint_pk"] is not None:
            if not item["ep_enabled"]:
                return None
            secrets = [self._open(item["secret"])]
            expires = item["previous_secret_expires_at"]
            if item["previous_secret"] and expires is not None and expires > now:
                secrets.append(self._open(item["previous_secret"]))
            return secrets
        sealed = item["callback_secret"]
        if sealed:
            return [self._open(sealed)]
        # A merchant that never asked for its callback secret gets one now; it can rotate it to read it.
        secret = new_secret()
        async with self.runtime.db.transaction() as tx:
            await tx.conn.execute(
                update(merchants)
                .where(merchants.c.pk == item["merchant_pk"], merchants.c.callback_secret.is_(None))
                .values(callback_secret=box.seal(secret))
            )
            sealed = (
                await tx.conn.execute(
                    select(merchants.c.callback_secret).where(merchants.c.pk == item["merchant_pk"])
                )
            ).scalar()
        return [box.open(str(sealed))]

    async def _settle(self, item: dict[str, Any], attempt: DeliveryAttempt, give_up: bool) -> None:
        now = self.runtime.clock.now()
        attempts = item["attempts"] + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "leased_until": None,
            "lease": None,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
        }
        disable_reason = None
        if attempt.ok:
            values.update(status="succeeded", completed_at=now)
        elif give_up or attempt.gone:
            values.update(status="failed", completed_at=now)
            if attempt.gone:
                disable_reason = "the endpoint answered 410 Gone"
        else:
            delay = next_attempt_delay(attempts, attempt.retry_after, self.rng)
            if delay is None:
                values.update(status="failed", completed_at=now)
            else:
                values.update(next_attempt_at=now + delay)
        async with self.runtime.db.transaction() as tx:
            result = await tx.conn.execute(
                update(deliveries)
                .where(deliveries.c.pk == item["pk"], deliveries.c.lease == item["lease"])
                .values(**values)
            )
            still_there = (
                result.rowcount > 0
                or (
                    await tx.conn.execute(select(deliveries.c.pk).where(deliveries.c.pk == item["pk"]))
                ).first()
                is not None
            )
            if still_there:  # (a deleted endpoint takes its deliveries with it)
                await tx.conn.execute(
                    insert(delivery_attempts).values(
                        delivery_pk=item["pk"],
                        attempted_at=now,
                        status_code=attempt.status_code,
                        duration_ms=attempt.duration_ms,
                        error=attempt.error,
                        response_excerpt=attempt.response_excerpt,
                    )
                )
            if result.rowcount == 0:
                log.warning("delivery %s: lease lost before the answer was recorded", item["id"])
                return
            if item["endpoint_pk"] is None or give_up:
                return
            if attempt.ok:
                if item["ep_failing_since"] is None:
                    return
                await tx.conn.execute(
                    update(webhook_endpoints)
                    .where(
                        webhook_endpoints.c.pk == item["endpoint_pk"],
                        webhook_endpoints.c.failing_since.isnot(None),
                    )
                    .values(failing_since=None)
                )
                return
            endpoint = (
                await tx.conn.execute(
                    select(webhook_endpoints).where(webhook_endpoints.c.pk == item["endpoint_pk"])
                )
            ).first()
            if endpoint is None or not endpoint.enabled:
                return
            since = endpoint.failing_since or now
            limit = timedelta(hours=self.runtime.settings.webhook_disable_after_hours)
            if disable_reason is None and now - since >= limit:
                disable_reason = (
                    f"every delivery failed for {_hours(now - since)} (last error: {attempt.error})"
                )
            if disable_reason is None:
                if endpoint.failing_since is None:
                    await tx.conn.execute(
                        update(webhook_endpoints)
                        .where(webhook_endpoints.c.pk == endpoint.pk)
                        .values(failing_since=now)
                    )
                return
            await self._disable(tx, endpoint._mapping, disable_reason, attempt, attempts, now)

    async def _disable(
        self, tx: Any, endpoint: Any, reason: str, attempt: DeliveryAttempt, attempts: int, now: datetime
    ) -> None:
        await tx.conn.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.pk == endpoint["pk"])
            .values(enabled=False, disabled_reason=reason, updated_at=now)
        )
        await tx.conn.execute(
            update(deliveries)
            .where(deliveries.c.endpoint_pk == endpoint["pk"], deliveries.c.status == "pending")
            .values(status="failed", completed_at=now, last_error="endpoint disabled")
        )
        log.warning("webhook endpoint %s disabled: %s", endpoint["id"], reason)
        merchant = (
            await tx.conn.execute(
                select(merchants.c.name, merchants.c.email).where(merchants.c.pk == endpoint["merchant_pk"])
            )
        ).one()
        if merchant.email:
            msg = render_webhook_disabled(
                WebhookDisabledContext(
                    merchant_name=merchant.name,
                    endpoint_url=endpoint["url"],
                    reason=reason,
                    disabled_at=now,
                    endpoint_id=endpoint["id"],
                    failed_attempts=attempts,
                    last_error=attempt.error,
                    manage_url=f"{self.runtime.settings.base_url}/docs#/webhooks",
                ),
                merchant.email,
            )
            await queue_email(tx, endpoint["merchant_pk"], msg, None, now)


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.0f} hours"
