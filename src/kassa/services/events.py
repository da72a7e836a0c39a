"""The transactional outbox: every state change writes its event in the change's own transaction,
and with it one delivery row per interested webhook endpoint, one for the callback URL, and the
emails it triggers. Nothing is sent here: the worker sends, retries and logs."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from kassa.db.database import Tx
from kassa.db.tables import deliveries, emails, events, merchants, webhook_endpoints
from kassa.i18n import ENGLISH, Language, negotiate
from kassa.ids import new_id
from kassa.notify.email import (
    EmailKind,
    EmailMessageSpec,
    OrderEmailContext,
    RefundLinkContext,
    render_order_email,
    render_refund_link,
)

CUSTOMER_EMAILS = {
    "order.created": EmailKind.CUSTOMER_ORDER_CREATED,
    "order.paid": EmailKind.CUSTOMER_ORDER_PAID,
    "order.expired": EmailKind.CUSTOMER_ORDER_EXPIRED,
}


def callback_channel(merchant_pk: int, url: str) -> str:
    return f"cb:{merchant_pk}:{hashlib.sha256(url.encode()).hexdigest()[:24]}"


async def emit(
    tx: Tx,
    *,
    merchant_pk: int,
    type: str,
    object_type: str,
    object_id: str,
    order_id: str | None,
    sequence: int,
    data: dict[str, Any],
    test: bool,
    now: datetime,
    callback_url: str | None = None,
    customer_email: str | None = None,
    customer_locale: str | None = None,
    only_to: tuple[int, str, str] | None = None,
) -> str:
    """Record an event, its deliveries and its emails; customer emails are written in
    `customer_locale` (the order's), else English. `only_to` (an endpoint's pk, id and URL): one
    delivery there and nothing else (a test event)."""
    event_id = new_id("evt")
    event_pk = (
        await tx.conn.execute(
            insert(events)
            .values(
                id=event_id,
                merchant_pk=merchant_pk,
                type=type,
                object_type=object_type,
                object_id=object_id,
                order_id=order_id,
                sequence=sequence,
                data=data,
                test=test,
                created_at=now,
            )
            .returning(events.c.pk)
        )
    ).scalar_one()
    if only_to is not None:
        pk, channel, url = only_to
        await tx.conn.execute(
            insert(deliveries), [_delivery(merchant_pk, event_pk, pk, url, channel, order_id, now)]
        )
        tx.work_queued()
        return event_id
    merchant = await _merchant(tx, merchant_pk)
    targets = [
        (ep["pk"], ep["id"], ep["url"])
        for ep in await _endpoints(tx, merchant_pk)
        if "*" in ep["event_types"] or type in ep["event_types"]
    ]
    callback = callback_url or merchant["callback_url"]
    rows = [_delivery(merchant_pk, event_pk, pk, url, channel, order_id, now) for pk, channel, url in targets]
    if callback:
        rows.append(
            _delivery(
                merchant_pk, event_pk, None, callback, callback_channel(merchant_pk, callback), order_id, now
            )
        )
    if rows:
        await tx.conn.execute(insert(deliveries), rows)
        tx.work_queued()
    if object_type == "order":
        await _queue_emails(tx, merchant_pk, merchant, type, data, customer_email, customer_locale, now)
    elif type == "refund.created" and data.get("destination_url") and customer_email:
        lang = negotiate(order_locale=customer_locale)
        await _queue_refund_link(tx, merchant_pk, merchant, data, customer_email, lang, now)
    return event_id


def _delivery(
    merchant_pk: int,
    event_pk: int,
    endpoint_pk: int | None,
    url: str,
    channel: str,
    order_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": new_id("dlv"),
        "merchant_pk": merchant_pk,
        "event_pk": event_pk,
        "endpoint_pk": endpoint_pk,
        "url": url,
        "channel": channel,
        "order_id": order_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


async def _merchant(tx: Tx, merchant_pk: int) -> dict[str, Any]:
    key = ("merchant", merchant_pk)
    if key not in tx.cache:
        row = (
            await tx.conn.execute(
                select(
                    merchants.c.name,
                    merchants.c.email,
                    merchants.c.callback_url,
                    merchants.c.notify_paid_email,
                ).where(merchants.c.pk == merchant_pk)
            )
        ).one()
        tx.cache[key] = dict(row._mapping)
    value: dict[str, Any] = tx.cache[key]
    return value


async def _endpoints(tx: Tx, merchant_pk: int) -> list[dict[str, Any]]:
    key = ("endpoints", merchant_pk)
    if key not in tx.cache:
        rows = await tx.conn.execute(
            select(
                webhook_endpoints.c.pk,
                webhook_endpoints.c.id,
                webhook_endpoints.c.url,
                webhook_endpoints.c.event_types,
            )
            .where(webhook_endpoints.c.merchant_pk == merchant_pk, webhook_endpoints.c.enabled.is_(True))
            .order_by(webhook_endpoints.c.pk)
        )
        tx.cache[key] = [dict(r._mapping) for r in rows]
    value: list[dict[str, Any]] = tx.cache[key]
    return value


async def _queue_emails(
    tx: Tx,
    merchant_pk: int,
    merchant: dict[str, Any],
    type: str,
    order: dict[str, Any],
    customer_email: str | None,
    customer_locale: str | None,
    now: datetime,
) -> None:
    messages = []
    kind = CUSTOMER_EMAILS.get(type)
    if kind is not None and customer_email:
        lang = negotiate(order_locale=customer_locale)
        messages.append(render_order_email(kind, _context(merchant, order, lang), customer_email))
    if type == "order.paid" and merchant["notify_paid_email"] and merchant["email"]:
        context = _context(merchant, order, ENGLISH)
        messages.append(render_order_email(EmailKind.MERCHANT_ORDER_PAID, context, merchant["email"]))
    for msg in messages:
        await queue_email(tx, merchant_pk, msg, order["id"], now)


async def _queue_refund_link(
    tx: Tx,
    merchant_pk: int,
    merchant: dict[str, Any],
    refund: dict[str, Any],
    customer_email: str,
    lang: Language,
    now: datetime,
) -> None:
    """A refund waits for the customer's address and Kassa knows their email: send them the link."""
    context = RefundLinkContext(
        merchant_name=merchant["name"],
        order_id=refund["order"],
        amount_display=lang.money(refund["amount"], refund["currency"]),
        link=refund["destination_url"],
        merchant_contact=merchant["email"],
        test=refund["test"],
        language=lang.code,
    )
    await queue_email(tx, merchant_pk, render_refund_link(context, customer_email), refund["order"], now)


def _context(merchant: dict[str, Any], order: dict[str, Any], lang: Language) -> OrderEmailContext:
    received = order.get("amount_received") or 0
    pay_currency = order.get("payment_currency") or order["currency"]
    return OrderEmailContext(
        order_id=order["id"],
        merchant_name=merchant["name"],
        amount_display=lang.money(order["amount"], order["currency"]),
        description=order.get("description"),
        checkout_url=order["checkout_url"],
        status=order["status"],
        test=order["test"],
        paid_at=_dt(order.get("paid_at")),
        created_at=_dt(order.get("created_at")),
        expires_at=_dt(order.get("expires_at")),
        merchant_order_id=order.get("order_id"),
        customer_email=order.get("email"),
        underpaid=order.get("exception") == "underpaid",
        amount_received_display=lang.money(received, pay_currency) if received else None,
        merchant_contact=merchant["email"],
        language=lang.code,
    )


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def queue_email(
    tx: Tx, merchant_pk: int, msg: EmailMessageSpec, order_id: str | None, now: datetime
) -> None:
    await tx.conn.execute(
        insert(emails).values(
            id=new_id("eml"),
            merchant_pk=merchant_pk,
            kind=str(msg.kind),
            recipient=msg.to,
            subject=msg.subject,
            text_body=msg.text,
            html_body=msg.html,
            order_id=order_id,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
