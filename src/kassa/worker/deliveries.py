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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Text, bindparam, cast, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from kassa.compat.greenfield.delivery import greenfield_message, retries_wanted
from kassa.db.batching import Batcher
from kassa.db.database import lock_conflict
from kassa.db.tables import deliveries, delivery_attempts, events, merchants, webhook_endpoints
from kassa.db.types import UTCDateTime
from kassa.ids import new_id
from kassa.notify.email import WebhookDisabledContext, render_webhook_disabled
from kassa.notify.outbound import DeliveryAttempt, OutboundPools, deliver
from kassa.notify.schedule import next_attempt_delay
from kassa.notify.signing import new_secret, sign_headers
from kassa.runtime import Runtime
from kassa.services.events import queue_email
from kassa.services.views import iso
from kassa.worker import delivery_sql

log = logging.getLogger("kassa.deliveries")
T = TypeVar("T")

CLAIM_WAIT = 0.02  # seconds a claim may wait for more free slots
SETTLE_TRIES = 3  # a settle PostgreSQL aborts to break a deadlock is run again (db.database.lock_conflict)

# Settles a batch with one executemany: every row names all the columns it sets.
_SETTLE = update(deliveries).where(deliveries.c.pk == bindparam("b_pk")).values(leased_until=None, lease=None)


# SQLite's claim (PostgreSQL's is worker/delivery_sql.py): the due deliveries, at most `per_target`
# per target, so one target's backlog cannot fill the window and hide other targets' work, and only
# the first pending one of an order per target. The targets come from a skip scan of
# ix_deliveries_pending_channel; each target's due deliveries are walked in order until enough heads
# are found, so a claim costs about targets x per_target index probes, not one per due delivery.
_HEADS_SQLITE = text(
    """
WITH RECURSIVE targets(channel) AS (
    SELECT MIN(channel) FROM deliveries WHERE status = 'pending'
    UNION ALL
    SELECT (SELECT MIN(d.channel) FROM deliveries d WHERE d.status = 'pending' AND d.channel > t.channel)
    FROM targets t WHERE t.channel IS NOT NULL
)
SELECT x.pk FROM targets t JOIN deliveries x ON x.pk IN (
    SELECT d.pk FROM deliveries d
    WHERE d.channel = t.channel AND d.status = 'pending' AND d.next_attempt_at <= :now
      AND (d.leased_until IS NULL OR d.leased_until < :now)
      AND NOT EXISTS (SELECT 1 FROM deliveries e
                      WHERE e.channel = d.channel AND e.order_id = d.order_id
                        AND e.status = 'pending' AND e.pk < d.pk)
    ORDER BY d.next_attempt_at, d.pk
    LIMIT :per_target
)
"""
)


def _tracks_endpoint(outcome: _Outcome) -> bool:
    """Whether recording this answer may change its endpoint (failing since, disabled, recovered)."""
    item = outcome.item
    if item["endpoint_pk"] is None or outcome.give_up:
        return False
    return not outcome.attempt.ok or item["ep_failing_since"] is not None


def webhook_body(item: dict[str, Any]) -> bytes:
    """The webhook's JSON: the event's fields, then its stored snapshot as `data`, verbatim."""
    head = json.dumps(
        {
            "id": item["event_id"],
            "type": item["type"],
            "timestamp": iso(item["created_at"]),
            "sequence": item["sequence"],
            "order": item["order_id"],
            "test": item["test"],
        },
        separators=(",", ":"),
    )
    return f'{head[:-1]},"data":{item["data"]}}}'.encode()


@dataclass(frozen=True, slots=True)
class _Outcome:
    item: dict[str, Any]
    attempt: DeliveryAttempt
    give_up: bool


class DeliveryWorker:
    def __init__(
        self, runtime: Runtime, clients: OutboundPools | None = None, rng: random.Random | None = None
    ):
        self.runtime = runtime
        settings = runtime.settings
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not security)
        self.concurrency = settings.webhook_concurrency
        self.per_target = settings.webhook_per_target
        self.clients = clients or OutboundPools(self.per_target)
        # Claim when a quarter of the slots are free (or after CLAIM_WAIT): one claim per several sends.
        self.claim_min = max(1, self.concurrency // 4)
        # SQLite runs one writer at a time: a second batch in flight would only wait for the lock.
        self._settles: Batcher[_Outcome, None] = Batcher(
            self._settle_batch, name="delivery-settle", max_running=2 if runtime.db.is_postgres else 1
        )
        self.lease = timedelta(seconds=settings.webhook_lease_seconds)
        self._in_flight: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._freed = asyncio.Event()  # a send finished (its slot is free) or a task ended
        self._sending = 0  # sends whose answer is not in yet
        self._opened: dict[str, str] = {}  # sealed secret -> secret

    async def aclose(self) -> None:
        await self.clients.aclose()

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
        free = await self._capacity()
        if free <= 0:
            return 0
        claimed = await self._claim(free)
        for item in claimed:
            self._in_flight[item["channel"]] += 1
            self._sending += 1
            task = asyncio.create_task(self._send(item))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        return len(claimed)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._freed.set()

    def _free(self) -> int:
        # A send's slot is free once its answer is in; recording it (batched) may take a little
        # longer, so at most as many sends again may be waiting to be recorded.
        return min(self.concurrency - self._sending, 2 * self.concurrency - len(self._tasks))

    async def _capacity(self) -> int:
        """Free send slots: waits for one when none is free, and up to CLAIM_WAIT for `claim_min`."""
        while self._tasks and self._free() <= 0:
            self._freed.clear()
            await self._freed.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLAIM_WAIT
        while self._sending and self._free() < self.claim_min:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._freed.wait()
        return self._free()

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
        lease = new_id("lse")
        if db.is_postgres:
            return await delivery_sql.claim(
                db,
                now=now,
                per_target=self.per_target,
                busy=self._in_flight,
                limit=limit,
                lease=lease,
                until=now + self.lease,
            )
        heads = _HEADS_SQLITE.bindparams(
            bindparam("now", now, type_=UTCDateTime()), per_target=self.per_target
        ).columns(pk=BigInteger)
        query = (
            select(deliveries.c.pk, deliveries.c.channel)
            .where(deliveries.c.pk.in_(heads))
            .order_by(deliveries.c.next_attempt_at, deliveries.c.pk)
            .limit(limit * 4)
        )
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
                    deliveries.c.next_attempt_at,
                    deliveries.c.endpoint_pk,
                    deliveries.c.merchant_pk,
                    events.c.id.label("event_id"),
                    events.c.type,
                    events.c.created_at,
                    events.c.sequence,
                    events.c.order_id,
                    events.c.test,
                    # The snapshot as stored (JSON text): spliced into the body, never parsed here.
                    cast(events.c.data, Text).label("data"),
                    # What signing needs comes with the claim: no lookup per send.
                    webhook_endpoints.c.enabled.label("ep_enabled"),
                    webhook_endpoints.c.secret,
                    webhook_endpoints.c.previous_secret,
                    webhook_endpoints.c.previous_secret_expires_at,
                    webhook_endpoints.c.failing_since.label("ep_failing_since"),
                    merchants.c.callback_secret,
                    deliveries.c.event_pk,
                    webhook_endpoints.c.id.label("endpoint_id"),
                    webhook_endpoints.c.format.label("ep_format"),
                    webhook_endpoints.c.options.label("ep_options"),
                    merchants.c.id.label("merchant_id"),
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
            try:
                outcome = await self._attempt(item)
            finally:
                self._in_flight[item["channel"]] -= 1
                self._sending -= 1
                self._freed.set()
                self._wake.set()  # capacity freed: this target (or another) may have work due
            await self._settles.submit(outcome)
        except Exception:
            log.exception(
                "delivery %s failed unexpectedly; its lease will run out and it will be retried", item["id"]
            )
        finally:
            self._freed.set()
            self._wake.set()  # settled: the order's next event for this target may be due now

    async def _attempt(self, item: dict[str, Any]) -> _Outcome:
        secrets = await self._secrets(item)
        if secrets is None:
            attempt = DeliveryAttempt(None, False, 0, "", "endpoint deleted or disabled", None, False)
            return _Outcome(item, attempt, give_up=True)
        if item["endpoint_pk"] is not None and item["ep_format"] == "greenfield":
            message = await greenfield_message(self.runtime, item, secrets[0])
            if message is None:
                why = f"{item['type']} has no Greenfield event"
                return _Outcome(item, DeliveryAttempt(None, False, 0, "", why, None, False), give_up=True)
            body, headers = message
        else:
            body = webhook_body(item)
            headers = {
                "content-type": "application/json",
                # Wall-clock time, not the scheduling clock: receivers check it against theirs.
                **sign_headers(secrets, item["event_id"], datetime.now(UTC), body),
            }
        async with self.clients.client(item["channel"]) as client:
            attempt = await deliver(
                client,
                item["url"],
                body,
                headers,
                allow_private=self.runtime.settings.allow_private_webhooks,
                timeout=self.runtime.settings.webhook_timeout,
            )
        return _Outcome(item, attempt, give_up=False)

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

    def _outcome_values(self, outcome: _Outcome, now: datetime) -> dict[str, Any]:
        item, attempt = outcome.item, outcome.attempt
        attempts = item["attempts"] + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
            "status": "pending",
            "next_attempt_at": item["next_attempt_at"],
            "completed_at": None,
        }
        if attempt.ok:
            values.update(status="succeeded", completed_at=now)
        elif outcome.give_up or attempt.gone or not retries_wanted(item):
            values.update(status="failed", completed_at=now)
        else:
            delay = next_attempt_delay(attempts, attempt.retry_after, self.rng)
            if delay is None:
                values.update(status="failed", completed_at=now)
            else:
                values.update(next_attempt_at=now + delay)
        return values

    async def _settle_batch(self, outcomes: list[_Outcome]) -> list[None]:
        """Record the answers of several sends at once (db/batching.py). Only the lease holder
        settles a delivery; an attempt is logged as long as its delivery exists."""
        now = self.runtime.clock.now()
        db = self.runtime.db
        results: list[None] = [None] * len(outcomes)
        if db.is_postgres:
            # Answers that change nothing about their endpoint's health: one statement for all.
            plain = [o for o in outcomes if not _tracks_endpoint(o)]
            if plain:
                rows = [self._settle_row(o, now) for o in plain]
                kept = await _retried(lambda: delivery_sql.settle(db, rows, now))
                for o in plain:
                    if o.item["pk"] not in kept:
                        log.warning("delivery %s: lease lost before the answer was recorded", o.item["id"])
            outcomes = [o for o in outcomes if _tracks_endpoint(o)]
            if not outcomes:
                return results
        by_pk = sorted(outcomes, key=lambda o: o.item["pk"])  # one lock order for every batch
        await _retried(lambda: self._settle_tracked(by_pk, now))
        return results

    async def _settle_tracked(self, by_pk: list[_Outcome], now: datetime) -> None:
        """Answers that may change their endpoint, in one transaction. On PostgreSQL the endpoints
        are locked first, in key order: two batches that fail (or disable) one endpoint then queue
        on its row instead of each holding deliveries the other's disabling must update."""
        db = self.runtime.db
        async with db.transaction() as tx:
            query = select(deliveries.c.pk, deliveries.c.lease).where(
                deliveries.c.pk.in_([o.item["pk"] for o in by_pk])
            )
            if db.is_postgres:
                endpoint_pks = sorted({o.item["endpoint_pk"] for o in by_pk})
                await tx.conn.execute(
                    select(webhook_endpoints.c.pk)
                    .where(webhook_endpoints.c.pk.in_(endpoint_pks))
                    .order_by(webhook_endpoints.c.pk)
                    .with_for_update()
                )
                query = query.order_by(deliveries.c.pk).with_for_update()
            leases = {row.pk: row.lease for row in await tx.conn.execute(query)}
            # (a deleted endpoint takes its deliveries with it: those are gone, nothing to record)
            present = [o for o in by_pk if o.item["pk"] in leases]
            held = [o for o in present if leases[o.item["pk"]] == o.item["lease"]]
            for o in present:
                if leases[o.item["pk"]] != o.item["lease"]:
                    log.warning("delivery %s: lease lost before the answer was recorded", o.item["id"])
            if held:
                await tx.conn.execute(
                    _SETTLE, [{"b_pk": o.item["pk"], **self._outcome_values(o, now)} for o in held]
                )
            if present:
                await tx.conn.execute(
                    insert(delivery_attempts),
                    [
                        {
                            "delivery_pk": o.item["pk"],
                            "attempted_at": now,
                            "status_code": o.attempt.status_code,
                            "duration_ms": o.attempt.duration_ms,
                            "error": o.attempt.error,
                            "response_excerpt": o.attempt.response_excerpt,
                        }
                        for o in present
                    ],
                )
            for o in held:
                await self._track_endpoint(tx, o, now)

    def _settle_row(self, outcome: _Outcome, now: datetime) -> dict[str, Any]:
        return {
            **self._outcome_values(outcome, now),
            "pk": outcome.item["pk"],
            "lease": outcome.item["lease"],
            "duration_ms": outcome.attempt.duration_ms,
            "response_excerpt": outcome.attempt.response_excerpt,
        }

    async def _track_endpoint(self, tx: Any, outcome: _Outcome, now: datetime) -> None:
        """An endpoint's health after one of its deliveries: failing since when, or disabled."""
        item, attempt = outcome.item, outcome.attempt
        if item["endpoint_pk"] is None or outcome.give_up:
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
        disable_reason = "the endpoint answered 410 Gone" if attempt.gone else None
        since = endpoint.failing_since or now
        limit = timedelta(hours=self.runtime.settings.webhook_disable_after_hours)
        if disable_reason is None and now - since >= limit:
            disable_reason = f"every delivery failed for {_hours(now - since)} (last error: {attempt.error})"
        if disable_reason is None:
            if endpoint.failing_since is None:
                await tx.conn.execute(
                    update(webhook_endpoints)
                    .where(webhook_endpoints.c.pk == endpoint.pk)
                    .values(failing_since=now)
                )
            return
        await self._disable(tx, endpoint._mapping, disable_reason, attempt, item["attempts"] + 1, now)

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


async def _retried(run: Callable[[], Awaitable[T]]) -> T:
    """`run()`, again when PostgreSQL aborted it to break a deadlock (nothing of it was written).
    Without this a settle lost that way kept its lease until the lease ran out, and the order's later
    deliveries waited behind it (seen in CI: a failing endpoint disabled by two batches at once)."""
    for attempt in range(SETTLE_TRIES):
        try:
            return await run()
        except DBAPIError as exc:
            if not lock_conflict(exc) or attempt == SETTLE_TRIES - 1:
                raise
            log.info("delivery settle hit a lock conflict; trying again")
    raise AssertionError("unreachable")


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.0f} hours"
