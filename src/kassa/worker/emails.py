"""Sends the email outbox. A failing mail server delays mail; it loses none (retried on the
Standard Webhooks schedule, about three days, before an email is marked failed)."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from sqlalchemy import or_, select, update

from kassa.db.tables import emails
from kassa.notify.email import EmailKind, EmailMessageSpec, MailDeliveryError, Mailer
from kassa.notify.schedule import next_attempt_delay
from kassa.runtime import Runtime

log = logging.getLogger("kassa.emails")
LEASE = timedelta(minutes=2)


class EmailWorker:
    def __init__(self, runtime: Runtime, mailer: Mailer, rng: random.Random | None = None) -> None:
        self.runtime = runtime
        self.mailer = mailer
        self.rng = rng or random.Random()  # noqa: S311 (jitter)

    async def run_once(self, limit: int = 50) -> int:
        db, now = self.runtime.db, self.runtime.clock.now()
        query = (
            select(emails)
            .where(
                emails.c.status == "pending",
                emails.c.next_attempt_at <= now,
                or_(emails.c.leased_until.is_(None), emails.c.leased_until < now),
            )
            .order_by(emails.c.pk)
            .limit(limit)
        )
        if db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        claimed_until = now + LEASE
        async with db.transaction() as tx:
            rows = (await tx.conn.execute(query)).all()
            if rows:
                await tx.conn.execute(
                    update(emails)
                    .where(emails.c.pk.in_([r.pk for r in rows]))
                    .values(leased_until=claimed_until)
                )
        for row in rows:
            # Renew this email's lease just before sending: if the batch outlived the claim and
            # another worker took it over, skip it instead of sending it twice.
            held_until = self.runtime.clock.now() + LEASE
            async with db.transaction() as tx:
                renewed = await tx.conn.execute(
                    update(emails)
                    .where(
                        emails.c.pk == row.pk,
                        emails.c.status == "pending",
                        emails.c.leased_until == claimed_until,
                    )
                    .values(leased_until=held_until)
                )
            if renewed.rowcount == 0:
                continue
            msg = EmailMessageSpec(
                to=row.recipient,
                subject=row.subject,
                text=row.text_body,
                html=row.html_body,
                kind=EmailKind(row.kind),
            )
            values: dict[str, object] = {"attempts": row.attempts + 1, "leased_until": None}
            try:
                await self.mailer.send(msg)
            except MailDeliveryError as exc:
                delay = None if exc.permanent else next_attempt_delay(row.attempts + 1, None, self.rng)
                values["last_error"] = str(exc)[:500]
                if delay is None:
                    values["status"] = "failed"
                    log.error("email %s failed for good: %s", row.id, exc)
                else:
                    values["next_attempt_at"] = self.runtime.clock.now() + delay
                    log.warning("email %s not sent (%s); retrying in %s", row.id, exc, delay)
            else:
                values.update(status="sent", sent_at=self.runtime.clock.now())
            async with db.transaction() as tx:
                await tx.conn.execute(
                    update(emails)
                    .where(emails.c.pk == row.pk, emails.c.leased_until == held_until)
                    .values(**values)
                )
        return len(rows)

    async def run(self, interval: float = 1.0) -> None:
        while True:
            try:
                sent = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("email pass failed; retrying")
                sent = 0
            if not sent:
                await asyncio.sleep(interval)
