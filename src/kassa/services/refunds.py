"""Refunds (docs/refunds.md): created by the merchant within what may be refunded, checked on the
locked order so that two requests cannot both take the same money; set aside in the ledger in the
same transaction; sent by the rail when it can spend (the test rail, at once), else by the merchant
who then marks it sent with the transaction's id.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from kassa.clock import Clock
from kassa.db.database import Database, Tx
from kassa.db.pagination import newest_first
from kassa.db.tables import merchants, orders, payments, refunds
from kassa.domain.ledger import refund_released, refund_returned, refund_sent
from kassa.domain.refunds import RefundStatus, RefundTransitionError, move, refund_refusal, refundable
from kassa.errors import Conflict, InvalidRequest, NotFound
from kassa.rails.base import (
    CounterpartUnavailable,
    DestinationInvalid,
    Prepared,
    RailConfig,
    SendRefused,
    SendRequest,
    SendUnsupported,
)
from kassa.rails.registry import get_rail, known_rails
from kassa.services import ledger
from kassa.services.events import emit
from kassa.services.orders import OrderService
from kassa.services.payment_methods import PaymentMethodService
from kassa.services.refund_links import LinkInvalid, RefundLinks
from kassa.services.refund_rules import held_total, record_refund, sent_total
from kassa.services.sending import Outbound, send_once, sent_rows, settled
from kassa.services.views import Row, refund_view

log = logging.getLogger("kassa.refunds")


class RefundService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        orders_service: OrderService,
        methods: PaymentMethodService,
        links: RefundLinks,
    ) -> None:
        self.db = db
        self.clock = clock
        self.orders = orders_service
        self.methods = methods
        self.links = links

    def _view(self, refund: Row, order_id: str) -> dict[str, Any]:
        return refund_view(refund, order_id, self.links)

    async def _config(self, merchant_pk: int, rail: str) -> RailConfig:
        config = await self.methods.config(merchant_pk, rail, enabled_only=False)
        if config is None:
            raise Conflict(f"payment rail {rail!r} is no longer configured", code="rail_unavailable")
        return config

    async def create(
        self,
        merchant_pk: int,
        order_ref: str,
        amount: int,
        *,
        currency: str | None = None,
        reason: str | None = None,
        destination: str | None = None,
    ) -> dict[str, Any]:
        view = await self.orders.get(merchant_pk, order_ref)
        quote = next((q for q in view["payment_methods"] if q["method"] == view["method"]), None)
        if quote is None or not view["amount_confirmed"]:
            raise Conflict(
                "nothing final was paid on this order, so nothing can be refunded", code="nothing_to_refund"
            )
        config = await self._config(merchant_pk, quote["rail"])
        rail = get_rail(config.rail)
        if destination is not None:
            try:
                destination = await rail.check_destination(config, destination)
            except DestinationInvalid as exc:
                raise InvalidRequest(str(exc), param="destination") from None
            except CounterpartUnavailable as exc:
                raise Conflict(
                    f"the rail cannot check the address right now: {exc}", code="rail_unavailable"
                ) from None
        now = self.clock.now()
        async with self.db.transaction() as tx:
            order_pk = (
                await tx.conn.execute(select(orders.c.pk).where(orders.c.id == view["id"]))
            ).scalar_one()
            row, _state = await self.orders.lock_current(tx, order_pk)
            held = await held_total(tx, order_pk)
            refusal = refund_refusal(
                amount,
                refundable(row["amount_confirmed"], held),
                (currency or quote["currency"]).upper(),
                quote["currency"],
            )
            if refusal is not None:
                param, why = refusal
                raise InvalidRequest(why, param=param)
            refund = await record_refund(
                tx,
                row,
                quote,
                rail,
                amount=amount,
                origin="merchant",
                approved=True,
                now=now,
                reason=reason,
                destination=destination,
            )
            refunded = await sent_total(tx, order_pk)
            await self._announce(tx, row, "refund.created", refund, now, refunded=refunded)
        if refund["status"] == RefundStatus.PENDING.value and rail.spends(config):
            return await self.send(merchant_pk, refund["id"])
        return self._view(refund, view["id"])  # the customer says where, or the merchant sends it

    async def send(self, merchant_pk: int, refund_id: str) -> dict[str, Any]:
        """Send a pending refund through the rail, exactly once (services/sending.py). Rails that
        cannot spend leave it pending for the merchant to send; a refusal fails it; an unreachable
        wallet leaves it pending for the worker's next pass."""
        refund, order_id = await self._get(merchant_pk, refund_id)
        if refund["status"] != RefundStatus.PENDING.value:
            raise Conflict(
                f"the refund is {refund['status']}; only a pending refund is sent", code="refund_not_pending"
            )
        if not refund["approved"]:
            raise Conflict("the refund waits for the merchant's approval", code="refund_not_approved")
        config = await self._config(merchant_pk, refund["rail"])
        rail = get_rail(config.rail)
        if not rail.spends(config):
            return self._view(refund, order_id)  # the merchant sends it and marks it sent
        request = SendRequest(refund["id"], refund["destination"], refund["amount"], refund["currency"])
        out = Outbound(self.db, refunds, refund, RefundStatus.PENDING.value, "refund")
        try:
            prepared = await send_once(rail, config, request, out, self.clock.now())
        except SendUnsupported:
            return self._view(refund, order_id)
        except CounterpartUnavailable as exc:
            log.warning("refund %s: the wallet cannot be reached: %s", refund_id, exc)
            return self._view(refund, order_id)
        except SendRefused as exc:
            return await self._change(merchant_pk, refund_id, RefundStatus.FAILED, failure=str(exc)[:500])
        return await self._change(
            merchant_pk, refund_id, RefundStatus.SENT, sent=prepared, confirmed=prepared.final
        )

    async def waiting_for_address(self, order_id: str) -> list[dict[str, Any]]:
        """An order's refunds that wait for the customer's address, with their links (the checkout
        page shows them: whoever has the order's page is the customer)."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(refunds)
                .join(orders, orders.c.pk == refunds.c.order_pk)
                .where(orders.c.id == order_id, refunds.c.status == RefundStatus.PENDING_DESTINATION.value)
                .order_by(refunds.c.pk)
            )
            return [self._view(r._mapping, order_id) for r in rows]

    async def for_link(self, token: str) -> tuple[dict[str, Any], str, str | None]:
        """The refund a customer's link names, with its merchant's name and the order's locale
        (LinkInvalid, LinkExpired)."""
        row = await self._by_link(token)
        return self._view(row, row["order_id"]), row["merchant"], row["order_locale"]

    async def _by_link(self, token: str) -> dict[str, Any]:
        refund_id = self.links.read(token)
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        refunds,
                        orders.c.id.label("order_id"),
                        orders.c.locale.label("order_locale"),
                        merchants.c.name.label("merchant"),
                    )
                    .join(orders, orders.c.pk == refunds.c.order_pk)
                    .join(merchants, merchants.c.pk == refunds.c.merchant_pk)
                    .where(refunds.c.id == refund_id)
                )
            ).first()
        if row is None:
            raise LinkInvalid("this refund no longer exists")
        return dict(row._mapping)

    async def set_destination(self, token: str, destination: str) -> dict[str, Any]:
        """The customer says where the refund goes; sent at once when it is approved and the rail spends."""
        found = await self._by_link(token)
        if found["status"] != RefundStatus.PENDING_DESTINATION.value:
            raise Conflict("this refund already has its address", code="refund_state")
        merchant_pk = found["merchant_pk"]
        config = await self._config(merchant_pk, found["rail"])
        try:
            checked = await get_rail(config.rail).check_destination(config, destination)
        except DestinationInvalid as exc:
            raise InvalidRequest(str(exc), param="destination") from None
        except CounterpartUnavailable as exc:
            raise Conflict(
                f"the address cannot be checked right now, try again in a moment: {exc}",
                code="rail_unavailable",
            ) from None
        async with self.db.transaction() as tx:
            await self.orders.lock_current(tx, found["order_pk"])
            changed = await tx.conn.execute(
                update(refunds)
                .where(
                    refunds.c.pk == found["pk"], refunds.c.status == RefundStatus.PENDING_DESTINATION.value
                )
                .values(status=RefundStatus.PENDING.value, destination=checked, updated_at=self.clock.now())
            )
            if not changed.rowcount:
                raise Conflict("this refund already has its address", code="refund_state")
        if found["approved"]:
            return await self.send(merchant_pk, found["id"])
        return await self.get(merchant_pk, found["id"])

    async def approve(self, merchant_pk: int, refund_id: str) -> dict[str, Any]:
        """Let a refund made by rule go: sent at once when the rail can and knows where."""
        refund, _order_id = await self._get(merchant_pk, refund_id)
        if refund["status"] not in (RefundStatus.PENDING_DESTINATION.value, RefundStatus.PENDING.value):
            raise Conflict(
                f"the refund is {refund['status']}; there is nothing to approve", code="refund_state"
            )
        if not refund["approved"]:
            async with self.db.transaction() as tx:
                await tx.conn.execute(
                    update(refunds)
                    .where(refunds.c.pk == refund["pk"])
                    .values(approved=True, updated_at=self.clock.now())
                )
        if refund["status"] == RefundStatus.PENDING.value:
            return await self.send(merchant_pk, refund_id)
        return await self.get(merchant_pk, refund_id)

    async def send_due(self, limit: int = 100) -> int:
        """The worker's pass: send approved pending refunds of configurations that spend (made by rule
        under the `automatic` policy, or left pending when the wallet could not be reached). Refunds
        the merchant sends by hand are never picked, so they cannot crowd out those Kassa sends."""
        rails = set(known_rails())
        spenders = {
            (config.merchant_pk, config.rail)
            for config in await self.methods.all_configs()
            if config.rail in rails and get_rail(config.rail).spends(config)
        }
        if not spenders:
            return 0
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(refunds.c.merchant_pk, refunds.c.id, refunds.c.rail)
                    .where(
                        refunds.c.status == RefundStatus.PENDING.value,
                        refunds.c.approved.is_(True),
                        refunds.c.merchant_pk.in_({pk for pk, _rail in spenders}),
                        refunds.c.rail.in_({rail for _pk, rail in spenders}),
                    )
                    .order_by(refunds.c.pk)
                    .limit(limit)
                )
            ).all()
        sent = 0
        for row in rows:
            if (row.merchant_pk, row.rail) not in spenders:
                continue
            try:
                after = await self.send(row.merchant_pk, row.id)
            except Conflict:
                continue  # it moved on meanwhile
            sent += after["status"] != RefundStatus.PENDING.value
        return sent

    async def mark_sent(self, merchant_pk: int, refund_id: str, reference: str) -> dict[str, Any]:
        """The merchant sent it by hand: the transaction's id (the network's fee was the merchant's)."""
        refund, _order_id = await self._get(merchant_pk, refund_id)
        if refund["prepared"] is not None and refund["status"] == RefundStatus.PENDING.value:
            raise Conflict(
                "Kassa's wallet is sending this refund; it cannot be marked sent by hand",
                code="refund_state",
            )
        if await self._is_a_payment(merchant_pk, reference):
            raise InvalidRequest(
                "this transaction paid you (it is an order's payment), it is not the refund",
                param="reference",
            )
        by_hand = Prepared(reference, refund["amount"], 0, "")
        return await self._change(merchant_pk, refund_id, RefundStatus.SENT, sent=by_hand)

    async def _is_a_payment(self, merchant_pk: int, reference: str) -> bool:
        """Whether `reference` names a transaction that paid one of this merchant's orders (a chain
        rail's payment reference starts with its transaction id)."""
        async with self.db.read() as conn:
            found = await conn.execute(
                select(payments.c.pk)
                .where(
                    payments.c.merchant_pk == merchant_pk,
                    or_(
                        payments.c.reference == reference,
                        payments.c.reference.startswith(f"{reference}:", autoescape=True),
                    ),
                )
                .limit(1)
            )
            return found.first() is not None

    async def confirm_sent(self, limit: int = 100) -> int:
        """The worker's pass: ask the rail about each sent refund's transaction; confirmed when it is
        final, failed (owed to the customer again, then given back to what may be refunded) when the
        network dropped it. A wallet that does not know it leaves it sent."""
        moved = 0
        for row in await sent_rows(self.db, refunds, RefundStatus.SENT.value, limit):
            state = await settled(self.methods, row.merchant_pk, row.rail, row.reference)
            if state is None:
                continue
            target = RefundStatus.CONFIRMED if state == "confirmed" else RefundStatus.FAILED
            failure = (
                "the network dropped the refund's transaction" if target is RefundStatus.FAILED else None
            )
            try:
                await self._change(row.merchant_pk, row.id, target, failure=failure)
            except Conflict:
                continue
            moved += 1
        return moved

    async def cancel(self, merchant_pk: int, refund_id: str) -> dict[str, Any]:
        return await self._change(merchant_pk, refund_id, RefundStatus.CANCELED)

    async def get(self, merchant_pk: int, refund_id: str) -> dict[str, Any]:
        refund, order_id = await self._get(merchant_pk, refund_id)
        return self._view(refund, order_id)

    async def for_order(
        self, merchant_pk: int, order_ref: str, limit: int, starting_after: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        view = await self.orders.get(merchant_pk, order_ref)
        scope = refunds.c.merchant_pk == merchant_pk
        query = (
            select(refunds)
            .join(orders, orders.c.pk == refunds.c.order_pk)
            .where(scope, orders.c.id == view["id"])
        )
        async with self.db.read() as conn:
            rows, more = await newest_first(
                conn, refunds, query, scope, limit=limit, starting_after=starting_after, noun="refund"
            )
        return [self._view(r, view["id"]) for r in rows], more

    # ----- internals ----------------------------------------------------------------------

    async def _get(self, merchant_pk: int, refund_id: str) -> tuple[dict[str, Any], str]:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(refunds, orders.c.id.label("order_id"))
                    .join(orders, orders.c.pk == refunds.c.order_pk)
                    .where(refunds.c.merchant_pk == merchant_pk, refunds.c.id == refund_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"no refund {refund_id[:40]!r}", param="id")
        values = dict(row._mapping)
        return values, values.pop("order_id")

    async def _change(
        self,
        merchant_pk: int,
        refund_id: str,
        target: RefundStatus,
        *,
        sent: Prepared | None = None,
        failure: str | None = None,
        confirmed: bool = False,
    ) -> dict[str, Any]:
        found, _order_id = await self._get(merchant_pk, refund_id)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            row, _state = await self.orders.lock_current(tx, found["order_pk"])
            refund = dict(
                (await tx.conn.execute(select(refunds).where(refunds.c.pk == found["pk"]))).one()._mapping
            )
            current = RefundStatus(refund["status"])
            reference = sent.reference if sent is not None else None
            if current is target and (target is not RefundStatus.SENT or refund["reference"] == reference):
                return self._view(refund, row["id"])  # the same change again
            try:
                move(current, target)
            except RefundTransitionError as exc:
                raise Conflict(str(exc), code="refund_state") from None
            changes: dict[str, Any] = {"status": target.value, "updated_at": now}
            postings = []
            if target is RefundStatus.SENT:
                assert sent is not None
                changes.update(
                    reference=sent.reference,
                    received=sent.received,
                    network_fee=sent.network_fee,
                    prepared=None,
                    sent_at=now,
                )
                postings.append(
                    refund_sent(
                        refund["id"], refund["currency"], refund["amount"], sent.received, sent.network_fee
                    )
                )
            if target is RefundStatus.CONFIRMED:
                changes["confirmed_at"] = now
            if target in (RefundStatus.FAILED, RefundStatus.CANCELED):
                changes.update(failure=failure, prepared=None)
                if current is RefundStatus.SENT:
                    postings.append(
                        refund_returned(
                            refund["id"],
                            refund["currency"],
                            refund["amount"],
                            refund["received"],
                            refund["network_fee"] or 0,
                        )
                    )
                postings.append(refund_released(refund["id"], refund["currency"], refund["amount"]))
            await tx.conn.execute(update(refunds).where(refunds.c.pk == refund["pk"]).values(**changes))
            refund.update(changes)
            for posting in postings:
                await ledger.post(tx, merchant_pk, posting, test=row["test"], now=now, order_id=row["id"])
            event = {
                RefundStatus.SENT: "refund.sent",
                RefundStatus.CONFIRMED: "refund.confirmed",
                RefundStatus.FAILED: "refund.failed",
                RefundStatus.CANCELED: "refund.canceled",
            }
            events = [event[target]] if target in event else []
            confirm: dict[str, Any] = {}
            if target is RefundStatus.SENT and confirmed:
                move(RefundStatus.SENT, RefundStatus.CONFIRMED)
                confirm = {"status": RefundStatus.CONFIRMED.value, "confirmed_at": now}
                await tx.conn.execute(update(refunds).where(refunds.c.pk == refund["pk"]).values(**confirm))
                events.append("refund.confirmed")
            refunded = await sent_total(tx, row["pk"])
            for index, name in enumerate(events):
                if name == "refund.confirmed":
                    refund.update(confirm)
                await self._announce(tx, row, name, refund, now, refunded=refunded, bump=index)
            return self._view(refund, row["id"])

    async def _announce(
        self,
        tx: Tx,
        order: Row,
        event: str,
        refund: dict[str, Any],
        now: datetime,
        *,
        refunded: int,
        bump: int = 0,
    ) -> None:
        """The refund's event, in the order's sequence; the order's `amount_refunded` follows."""
        sequence = order["event_seq"] + 1 + bump
        await tx.conn.execute(
            update(orders)
            .where(orders.c.pk == order["pk"])
            .values(
                event_seq=sequence, version=orders.c.version + 1, amount_refunded=refunded, updated_at=now
            )
        )
        await emit(
            tx,
            merchant_pk=order["merchant_pk"],
            type=event,
            object_type="refund",
            object_id=refund["id"],
            order_id=order["id"],
            sequence=sequence,
            data=self._view(refund, order["id"]),
            test=order["test"],
            now=now,
            callback_url=order["callback_url"],
            customer_email=order["email"],
            customer_locale=order["locale"],
        )
        tx.order_changed(order["id"])
