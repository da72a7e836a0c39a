"""Webhook endpoints, the event log and the delivery log, per merchant.

Signing secrets are kept encrypted (kassa.crypto) because Kassa must sign with them; they are shown
once, when created or rotated. During a rotation the previous secret keeps signing until its overlap
ends, so receivers can switch without missing a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kassa.clock import Clock
from kassa.crypto import SecretBox
from kassa.db.database import Database
from kassa.db.pagination import newest_first
from kassa.db.tables import deliveries, delivery_attempts, events, merchants, orders, webhook_endpoints
from kassa.errors import InvalidRequest, NotFound
from kassa.ids import new_id
from kassa.notify.outbound import UnsafeTarget, validate_target_url
from kassa.notify.signing import new_secret
from kassa.services.events import callback_channel, emit
from kassa.services.views import Row, iso

TEST_EVENT = "webhook.test"  # sent to one endpoint on request (WebhookService.send_test), never subscribed to
EVENT_TYPES = (
    "order.created",
    "order.processing",
    "order.paid",
    "order.expired",
    "order.canceled",
    "order.invalid",
    "order.reopened",
    "order.underpaid",
    "order.overpaid",
    "order.paid_late",
    "payment.received",
    "payment.confirmed",
    "payment.rejected",
    "refund.created",
    "refund.sent",
    "refund.confirmed",
    "refund.failed",
    "refund.canceled",
)


FORMATS = ("kassa", "greenfield")
"""How an endpoint's messages are written and signed: Standard Webhooks, or BTCPay's Greenfield."""


def event_view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "event",
        "type": row["type"],
        "created_at": iso(row["created_at"]),
        "order": row["order_id"],
        "object_type": row["object_type"],
        "object_id": row["object_id"],
        "sequence": row["sequence"],
        "test": row["test"],
        "data": row["data"],
    }


def endpoint_view(row: Row, secret: str | None = None) -> dict[str, Any]:
    view = {
        "id": row["id"],
        "object": "webhook_endpoint",
        "url": row["url"],
        "description": row["description"],
        "event_types": row["event_types"],
        "enabled": row["enabled"],
        "disabled_reason": row["disabled_reason"],
        "failing_since": iso(row["failing_since"]),
        "format": row["format"],
        "options": row["options"],
        "previous_secret_expires_at": iso(row["previous_secret_expires_at"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    if secret is not None:
        view["secret"] = secret
    return view


def delivery_view(row: Row, attempts: list[Row]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "delivery",
        "event": row["event_id"],
        "event_type": row["event_type"],
        "endpoint": row["endpoint_id"],
        "url": row["url"],
        "status": row["status"],
        "attempts": [
            {
                "attempted_at": iso(a["attempted_at"]),
                "status_code": a["status_code"],
                "duration_ms": a["duration_ms"],
                "error": a["error"],
                "response_excerpt": a["response_excerpt"],
            }
            for a in attempts
        ],
        "next_attempt_at": iso(row["next_attempt_at"]) if row["status"] == "pending" else None,
        "created_at": iso(row["created_at"]),
        "completed_at": iso(row["completed_at"]),
    }


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    url: str | None = None
    description: str | None = None
    event_types: list[str] | None = None
    enabled: bool | None = None
    secret: str | None = None  # a secret of the caller's choosing (Greenfield lets the store set it)
    options: dict[str, Any] | None = None


def _check_types(types: list[str]) -> list[str]:
    if not types:
        raise InvalidRequest('event_types must not be empty (use ["*"] for all)', param="event_types")
    unknown = [t for t in types if t != "*" and t not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(f"unknown event type(s): {', '.join(unknown)}", param="event_types")
    return sorted(set(types))


def _check_url(url: str) -> str:
    try:
        validate_target_url(url)
    except UnsafeTarget as exc:
        raise InvalidRequest(str(exc), param="url") from None
    return url


class WebhookService:
    def __init__(self, db: Database, clock: Clock, box: SecretBox, allow_private: bool) -> None:
        self.db = db
        self.clock = clock
        self.box = box
        self.allow_private = allow_private

    # ----- endpoints ----------------------------------------------------------------------

    async def create_endpoint(
        self,
        merchant_pk: int,
        url: str,
        event_types: list[str],
        description: str | None,
        enabled: bool,
        *,
        format: str = "kassa",
        secret: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`format` "greenfield" signs with BTCPay-Sig and takes any `secret` the caller chooses;
        Kassa's own endpoints always get a fresh Standard Webhooks secret."""
        if format not in FORMATS:
            raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}", param="format")
        secret = secret if secret is not None and format != "kassa" else new_secret()
        now = self.clock.now()
        values = {
            "id": new_id("whe"),
            "merchant_pk": merchant_pk,
            "url": _check_url(url),
            "description": description,
            "event_types": _check_types(event_types),
            "enabled": enabled,
            "secret": self.box.seal(secret),
            "previous_secret": None,
            "previous_secret_expires_at": None,
            "disabled_reason": None,
            "failing_since": None,
            "format": format,
            "options": options,
            "created_at": now,
            "updated_at": now,
        }
        async with self.db.transaction() as tx:
            await tx.conn.execute(insert(webhook_endpoints).values(**values))
        return endpoint_view(values, secret)

    async def list_endpoints(self, merchant_pk: int, format: str | None = None) -> list[dict[str, Any]]:
        query = select(webhook_endpoints).where(webhook_endpoints.c.merchant_pk == merchant_pk)
        if format is not None:
            query = query.where(webhook_endpoints.c.format == format)
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(webhook_endpoints.c.pk))
            return [endpoint_view(r._mapping) for r in rows]

    async def get_endpoint(self, merchant_pk: int, endpoint_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            return endpoint_view(await self._endpoint(conn, merchant_pk, endpoint_id))

    async def _endpoint(self, conn: AsyncConnection, merchant_pk: int, endpoint_id: str) -> Row:
        row = (
            await conn.execute(
                select(webhook_endpoints).where(
                    webhook_endpoints.c.merchant_pk == merchant_pk, webhook_endpoints.c.id == endpoint_id
                )
            )
        ).first()
        if row is None:
            raise NotFound(f"no webhook endpoint {endpoint_id!r}", param="id")
        return row._mapping

    async def update_endpoint(
        self, merchant_pk: int, endpoint_id: str, changes: EndpointChanges
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if changes.url is not None:
            values["url"] = _check_url(changes.url)
        if changes.description is not None:
            values["description"] = changes.description
        if changes.event_types is not None:
            values["event_types"] = _check_types(changes.event_types)
        if changes.enabled is not None:
            values["enabled"] = changes.enabled
            if changes.enabled:  # re-enabling clears the failure record
                values.update(disabled_reason=None, failing_since=None)
        if changes.options is not None:
            values["options"] = changes.options
        async with self.db.transaction() as tx:
            row = await self._endpoint(tx.conn, merchant_pk, endpoint_id)
            if changes.secret is not None:
                if row["format"] == "kassa":
                    raise InvalidRequest(
                        "rotate a Kassa endpoint's secret with /rotate-secret", param="secret"
                    )
                values.update(secret=self.box.seal(changes.secret), previous_secret=None)
            if values:
                await tx.conn.execute(
                    update(webhook_endpoints)
                    .where(webhook_endpoints.c.pk == row["pk"])
                    .values(updated_at=self.clock.now(), **values)
                )
            return endpoint_view(await self._endpoint(tx.conn, merchant_pk, endpoint_id))

    async def delete_endpoint(self, merchant_pk: int, endpoint_id: str) -> None:
        async with self.db.transaction() as tx:
            row = await self._endpoint(tx.conn, merchant_pk, endpoint_id)
            await tx.conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.pk == row["pk"]))

    async def rotate_secret(self, merchant_pk: int, endpoint_id: str, overlap_seconds: int) -> dict[str, Any]:
        """A new secret, shown once; the old one keeps signing for `overlap_seconds`."""
        secret = new_secret()
        now = self.clock.now()
        async with self.db.transaction() as tx:
            row = await self._endpoint(tx.conn, merchant_pk, endpoint_id)
            await tx.conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.pk == row["pk"])
                .values(
                    secret=self.box.seal(secret),
                    previous_secret=row["secret"] if overlap_seconds > 0 else None,
                    previous_secret_expires_at=now + timedelta(seconds=overlap_seconds)
                    if overlap_seconds
                    else None,
                    updated_at=now,
                )
            )
            return endpoint_view(await self._endpoint(tx.conn, merchant_pk, endpoint_id), secret)

    async def rotate_callback_secret(self, merchant_pk: int) -> str:
        """The merchant-level secret that signs callbacks; shown once."""
        secret = new_secret()
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                update(merchants)
                .where(merchants.c.pk == merchant_pk)
                .values(callback_secret=self.box.seal(secret), updated_at=self.clock.now())
            )
        return secret

    # ----- events -------------------------------------------------------------------------

    async def list_events(
        self,
        merchant_pk: int,
        *,
        limit: int,
        starting_after: str | None,
        type: str | None,
        object_id: str | None,
        order_id: str | None,
    ) -> tuple[list[dict[str, Any]], bool]:
        query = select(events).where(events.c.merchant_pk == merchant_pk)
        if type is not None:
            query = query.where(events.c.type == type)
        if object_id is not None:
            query = query.where(events.c.object_id == object_id)
        if order_id is not None:
            query = query.where(events.c.order_id == order_id)
        async with self.db.read() as conn:
            page, more = await newest_first(
                conn,
                events,
                query,
                events.c.merchant_pk == merchant_pk,
                limit=limit,
                starting_after=starting_after,
                noun="event",
            )
        return [event_view(r) for r in page], more

    async def get_event(self, merchant_pk: int, event_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            return event_view(await self._event(conn, merchant_pk, event_id))

    async def _event(self, conn: AsyncConnection, merchant_pk: int, event_id: str) -> Row:
        row = (
            await conn.execute(
                select(events).where(events.c.merchant_pk == merchant_pk, events.c.id == event_id)
            )
        ).first()
        if row is None:
            raise NotFound(f"no event {event_id!r}", param="id")
        return row._mapping

    async def redeliver(
        self, merchant_pk: int, event_id: str, endpoint_id: str | None
    ) -> list[dict[str, Any]]:
        """Queue the event again: to one endpoint, or to every enabled endpoint that wants it and
        to the order's callback URL. The message keeps its `webhook-id`, so receivers can dedupe."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            event = await self._event(tx.conn, merchant_pk, event_id)
            query = select(webhook_endpoints).where(webhook_endpoints.c.merchant_pk == merchant_pk)
            if endpoint_id is not None:
                endpoint = await self._endpoint(tx.conn, merchant_pk, endpoint_id)
                targets = [(endpoint["pk"], endpoint["id"], endpoint["url"])]
            else:
                rows = await tx.conn.execute(query.where(webhook_endpoints.c.enabled.is_(True)))
                targets = [
                    (r.pk, r.id, r.url)
                    for r in rows
                    if "*" in r.event_types or event["type"] in r.event_types
                ]
                callback = await self._callback_url(tx.conn, merchant_pk, event["order_id"])
                if callback:
                    targets.append((None, callback_channel(merchant_pk, callback), callback))
            created = []
            for pk, channel, url in targets:
                values = {
                    "id": new_id("dlv"),
                    "merchant_pk": merchant_pk,
                    "event_pk": event["pk"],
                    "endpoint_pk": pk,
                    "url": url,
                    "channel": channel,
                    "order_id": event["order_id"],
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                await tx.conn.execute(insert(deliveries).values(**values))
                created.append(
                    delivery_view(
                        {
                            **values,
                            "event_id": event["id"],
                            "event_type": event["type"],
                            "endpoint_id": channel if pk else None,
                            "completed_at": None,
                        },
                        [],
                    )
                )
            if event["order_id"]:
                tx.order_changed(event["order_id"])  # wakes the in-process delivery worker
            return created

    async def _callback_url(
        self, conn: AsyncConnection, merchant_pk: int, order_id: str | None
    ) -> str | None:
        merchant_url = (
            await conn.execute(select(merchants.c.callback_url).where(merchants.c.pk == merchant_pk))
        ).scalar()
        if order_id is None:
            return merchant_url
        order_url = (
            await conn.execute(select(orders.c.callback_url).where(orders.c.id == order_id))
        ).scalar()
        return order_url or merchant_url

    async def delivery(self, merchant_pk: int, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
        """One delivery to one of the merchant's endpoints, with its attempts."""
        page, _more = await self.deliveries(
            merchant_pk, endpoint_id, limit=1, starting_after=None, only=delivery_id
        )
        if not page:
            raise NotFound(f"no delivery {delivery_id!r}", param="delivery")
        return page[0]

    async def deliveries(
        self,
        merchant_pk: int,
        endpoint_id: str,
        *,
        limit: int,
        starting_after: str | None,
        only: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        async with self.db.read() as conn:
            endpoint = await self._endpoint(conn, merchant_pk, endpoint_id)
            query = _delivery_log().where(deliveries.c.endpoint_pk == endpoint["pk"])
            if only is not None:
                query = query.where(deliveries.c.id == only)
            page, more = await newest_first(
                conn,
                deliveries,
                query,
                deliveries.c.endpoint_pk == endpoint["pk"],
                limit=limit,
                starting_after=starting_after,
                noun="delivery",
            )
            return await _with_attempts(conn, page), more

    async def order_deliveries(
        self, merchant_pk: int, order_id: str, limit: int = 200
    ) -> list[dict[str, Any]]:
        """An order's deliveries to endpoints and to its callback URL, oldest first (the dashboard's
        timeline), with their attempts."""
        async with self.db.read() as conn:
            query = (
                _delivery_log()
                .where(deliveries.c.merchant_pk == merchant_pk, deliveries.c.order_id == order_id)
                .order_by(deliveries.c.pk)
                .limit(limit)
            )
            return await _with_attempts(conn, [r._mapping for r in await conn.execute(query)])

    async def send_test(self, merchant_pk: int, endpoint_id: str) -> str:
        """Queue a `webhook.test` event for one endpoint only (the dashboard's "send test event"): it
        goes through the same signing, delivery and log as every other event. Its id."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            endpoint = await self._endpoint(tx.conn, merchant_pk, endpoint_id)
            if endpoint["format"] != "kassa":
                raise InvalidRequest(
                    f"test events go to Kassa-format endpoints; this one speaks {endpoint['format']}",
                    param="endpoint",
                )
            return await emit(
                tx,
                merchant_pk=merchant_pk,
                type=TEST_EVENT,
                object_type="webhook_endpoint",
                object_id=endpoint_id,
                order_id=None,
                sequence=0,
                data={"id": endpoint_id, "object": "webhook_endpoint", "message": "a test from Kassa"},
                test=True,
                now=now,
                only_to=(endpoint["pk"], endpoint_id, endpoint["url"]),
            )


def _delivery_log() -> Select[Any]:
    """Deliveries with their event's id and type and their endpoint's id (none for a callback)."""
    return (
        select(
            deliveries,
            events.c.id.label("event_id"),
            events.c.type.label("event_type"),
            webhook_endpoints.c.id.label("endpoint_id"),
        )
        .join(events, events.c.pk == deliveries.c.event_pk)
        .outerjoin(webhook_endpoints, webhook_endpoints.c.pk == deliveries.c.endpoint_pk)
    )


async def _with_attempts(conn: AsyncConnection, rows: list[Row]) -> list[dict[str, Any]]:
    """Delivery views, each with its attempts (one query for all of them)."""
    attempts: dict[int, list[Row]] = {}
    if rows:
        for a in await conn.execute(
            select(delivery_attempts)
            .where(delivery_attempts.c.delivery_pk.in_([r["pk"] for r in rows]))
            .order_by(delivery_attempts.c.pk)
        ):
            attempts.setdefault(a.delivery_pk, []).append(a._mapping)
    return [delivery_view(r, attempts.get(r["pk"], [])) for r in rows]
