"""Orders: creation, reading, cancelation, and every move of the state machine.

All moves go through `_apply`, which runs `domain.orders.advance` on the locked order row and writes
the new state and its events in the same transaction.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import operator
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypedDict, Unpack

from sqlalchemy import Select, and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from kassa.clock import Clock
from kassa.db.database import Database, Tx
from kassa.db.order_insert import OrderInserter, PendingOrder
from kassa.db.pagination import cursor_pk, page_of, paged
from kassa.db.tables import orders, payments, quotes
from kassa.domain.currencies import UnknownCurrency, get_currency
from kassa.domain.ledger import payment_confirmed, payment_confirmed_key, payment_reversed
from kassa.domain.money import MAX_AMOUNT
from kassa.domain.orders import (
    LatePaymentPolicy,
    OrderException,
    OrderState,
    OrderStatus,
    OrderTerms,
    PaymentFacts,
    PaymentStatus,
    Step,
    TransitionError,
    advance,
    arrives_late,
    cancel,
    mark,
    payment_status,
    tolerance_for,
)
from kassa.errors import Conflict, InvalidRequest, NotFound
from kassa.ids import new_id
from kassa.rails.base import Destination, MethodSpec, Quote, QuoteRequest, RailConfig, keychain_of
from kassa.rails.registry import get_rail
from kassa.services import ledger
from kassa.services.addresses import AddressBook, KeyExhausted
from kassa.services.events import callback_channel, emit
from kassa.services.merchants import Merchant, load_merchant
from kassa.services.payment_methods import PaymentMethodService
from kassa.services.quotes import Quoter
from kassa.services.refund_links import RefundLinks
from kassa.services.refund_rules import due_by_rule
from kassa.services.ttl_cache import TTLCache
from kassa.services.views import SUMMARY_COLUMNS, Row, order_summary, order_view, payment_view, refund_view

log = logging.getLogger("kassa.orders")

MAX_EXPIRES_IN = 30 * 86400


@dataclass(frozen=True, slots=True)
class CartLine:
    name: str
    price: int
    quantity: int
    image: str | None = None


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A validated order request, whichever front it came through."""

    currency: str
    amount: int | None = None
    cart: list[CartLine] | None = None
    merchant_order_id: str | None = None
    description: str | None = None
    email: str | None = None
    confirmations: int | None = None
    expires_in: int | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    callback_url: str | None = None
    fulfillment_url: str | None = None
    session_id: str | None = None
    payment_methods: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    locale: str | None = None
    auto_redirect: bool = True
    # The merchant's settings for this order only (a front that takes them per order: Greenfield).
    tolerance_bps: int | None = None
    monitoring_window: int | None = None

    def fingerprint(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Observation:
    """What a rail saw of one transfer. Replaying it changes nothing."""

    rail: str
    reference: str
    amount: int
    confirmations: int
    rejected: bool = False
    replaceable: bool = False  # unconfirmed and signalling it may be replaced (BIP 125)


@dataclass(frozen=True, slots=True)
class CreateResult:
    order: dict[str, Any]
    created: bool
    body: str | None = None  # the order as JSON, when it was already serialized (the event's data)


def _amount_of(req: NewOrder) -> int:
    try:
        get_currency(req.currency)
    except UnknownCurrency:
        raise InvalidRequest(f"unknown currency {req.currency!r}", param="currency") from None
    if req.cart is not None:
        if not req.cart:
            raise InvalidRequest("cart must have at least one line", param="cart")
        total = 0
        for i, line in enumerate(req.cart):
            total += line.price * line.quantity
            if total >= MAX_AMOUNT:
                raise InvalidRequest("cart total is too large", param=f"cart[{i}]")
        if req.amount is not None and req.amount != total:
            raise InvalidRequest(f"amount {req.amount} does not match the cart total {total}", param="amount")
        amount = total
    elif req.amount is None:
        raise InvalidRequest("give either amount or cart", param="amount")
    else:
        amount = req.amount
    if amount <= 0:
        raise InvalidRequest("the order amount must be positive", param="amount")
    return amount


class OrderService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        base_url: str,
        methods: PaymentMethodService,
        quoter: Quoter,
        merchant_cache: TTLCache[tuple[Merchant, list[RailConfig]]] | None = None,
        refund_links: RefundLinks | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.base_url = base_url
        self.rails = methods
        self.quoter = quoter
        self.merchant_cache = merchant_cache or TTLCache(0)
        self.inserter = OrderInserter(db) if db.is_postgres else None
        self.refund_links = refund_links  # a refund made by rule names the customer's link in its event
        self.addresses = AddressBook(db, clock)  # indexes of addresses derived from public keys

    # ----- creation -----------------------------------------------------------------------

    async def create(self, merchant_pk: int, req: NewOrder) -> CreateResult:
        amount = _amount_of(req)
        if req.expires_in is not None and not 1 <= req.expires_in <= MAX_EXPIRES_IN:
            raise InvalidRequest(f"expires_in must be 1..{MAX_EXPIRES_IN} seconds", param="expires_in")
        # Only an order_id makes a repeat recognisable; without one, no fingerprint is needed.
        fingerprint = req.fingerprint() if req.merchant_order_id is not None else ""
        context = self.merchant_cache.get(merchant_pk)
        if context is None or req.merchant_order_id is not None:
            async with self.db.read() as conn:
                if req.merchant_order_id is not None:
                    existing = await self._existing(conn, merchant_pk, req.merchant_order_id, fingerprint)
                    if existing is not None:
                        return CreateResult(existing, created=False)
                if context is None:
                    context = await self._merchant_context(conn, merchant_pk)
        merchant, configs = context
        methods = _methods(configs, req.payment_methods)
        now = self.clock.now()
        order_id = new_id("ord")
        expires_at = now + timedelta(seconds=req.expires_in or merchant.invoice_lifetime)
        quote_req = QuoteRequest(
            order_id, amount, req.currency.upper(), expires_at, req.merchant_order_id, self.base_url
        )
        quote_rows = []
        priced = []
        for spec, config in methods:
            try:
                priced.append((spec, config, await self.quoter.quote(quote_req, spec, now)))
            except Conflict:
                if req.payment_methods is not None:  # asked for by name: say why it cannot be offered
                    raise
                log.warning("order %s: %s left out, no fresh rate to price it", order_id, spec.method)
        if not priced:
            raise Conflict(
                f"no payment method can be priced in {quote_req.currency} right now (no fresh exchange rate)",
                code="rate_unavailable",
                param="currency",
            )
        methods = [(spec, config) for spec, config, _ in priced]
        for _spec, config, quote in priced:
            # One method: it is chosen now, so its destination is allocated now.
            dest = (
                await self._destination(config, merchant_pk, quote_req, quote) if len(methods) == 1 else None
            )
            quote_rows.append(
                {
                    "method": quote.method,
                    "rail": config.rail,
                    "currency": quote.currency,
                    "amount": quote.amount,
                    "rate": str(quote.rate),
                    "destination": dest.address if dest else None,
                    "payment_uri": dest.payment_uri if dest else None,
                    "note": dest.note if dest else None,
                    "expires_at": quote.expires_at,
                    "created_at": now,
                }
            )
        chosen = quote_rows[0] if len(quote_rows) == 1 else None
        values: dict[str, Any] = {
            "id": order_id,
            "merchant_pk": merchant_pk,
            "merchant_order_id": req.merchant_order_id,
            "request_hash": fingerprint,
            "amount": amount,
            "currency": req.currency.upper(),
            "cart": [asdict(line) for line in req.cart] if req.cart is not None else None,
            "description": req.description,
            "email": req.email,
            "confirmations": (
                req.confirmations
                if req.confirmations is not None
                else _default_confirmations(methods, merchant.default_confirmations)
            ),
            "success_url": req.success_url,
            "cancel_url": req.cancel_url,
            "callback_url": req.callback_url,
            "fulfillment_url": req.fulfillment_url,
            "session_id": req.session_id,
            "metadata": req.metadata,
            "payment_methods": [spec.method for spec, _ in methods],
            "method": chosen["method"] if chosen else None,
            "status": OrderStatus.OPEN.value,
            "exception": None,
            "amount_due": chosen["amount"] if chosen else None,
            "tolerance_bps": merchant.payment_tolerance_bps
            if req.tolerance_bps is None
            else req.tolerance_bps,
            "monitoring_window": (
                merchant.monitoring_window if req.monitoring_window is None else req.monitoring_window
            ),
            "late_payment_policy": merchant.late_payment_policy.value,
            "amount_received": 0,
            "amount_confirmed": 0,
            "amount_refunded": 0,
            "expires_at": expires_at,
            "timer_remaining": None,
            "processing_since": None,
            "invalid_at": None,
            "late": False,
            "paid_at": None,
            "closed_at": None,
            "test": all(get_rail(config.rail).test for _, config in methods),
            "archived": False,
            "locale": req.locale,
            "auto_redirect": req.auto_redirect,
            "version": 1,
            "event_seq": 1,
            "created_at": now,
            "updated_at": now,
        }
        view = order_view(values, quote_rows, [], self.base_url)
        if self.inserter is not None and not req.email:
            body = json.dumps(view, separators=(",", ":"))
            callback = req.callback_url or merchant.callback_url
            inserted = await self.inserter.insert(
                PendingOrder.build(
                    values,
                    quote_rows,
                    new_id("evt"),
                    body,
                    (new_id("dlv"), callback, callback_channel(merchant_pk, callback)) if callback else None,
                )
            )
            if inserted.created:
                return CreateResult(view, created=True, body=body)
            return await self._lost_race(merchant_pk, req, fingerprint)
        try:
            async with self.db.transaction() as tx:
                tx.cache[("merchant", merchant_pk)] = merchant.notice_fields()
                pk = (
                    await tx.conn.execute(insert(orders).values(**values).returning(orders.c.pk))
                ).scalar_one()
                await tx.conn.execute(insert(quotes), [{"order_pk": pk, **q} for q in quote_rows])
                await emit(
                    tx,
                    merchant_pk=merchant_pk,
                    type="order.created",
                    object_type="order",
                    object_id=order_id,
                    order_id=order_id,
                    sequence=1,
                    data=view,
                    test=values["test"],
                    now=now,
                    callback_url=req.callback_url,
                    customer_email=req.email,
                    customer_locale=req.locale,
                )
                # No announcement: nobody can be waiting on an order that did not exist.
        except IntegrityError:
            if req.merchant_order_id is None:
                raise
            return await self._lost_race(merchant_pk, req, fingerprint)
        return CreateResult(view, created=True)

    async def _lost_race(self, merchant_pk: int, req: NewOrder, fingerprint: str) -> CreateResult:
        """Another request took the merchant's order_id first: answer as if we had arrived second."""
        assert req.merchant_order_id is not None
        async with self.db.read() as conn:
            existing = await self._existing(conn, merchant_pk, req.merchant_order_id, fingerprint)
        if existing is None:
            raise Conflict(
                f"an order with order_id {req.merchant_order_id!r} is being created; retry",
                param="order_id",
                code="order_id_conflict",
            )
        return CreateResult(existing, created=False)

    async def _existing(
        self, conn: AsyncConnection, merchant_pk: int, merchant_order_id: str, fingerprint: str
    ) -> dict[str, Any] | None:
        row = (
            await conn.execute(
                select(orders).where(
                    orders.c.merchant_pk == merchant_pk, orders.c.merchant_order_id == merchant_order_id
                )
            )
        ).first()
        if row is None:
            return None
        if row.request_hash != fingerprint:
            raise Conflict(
                f"an order with order_id {merchant_order_id!r} already exists with different details",
                param="order_id",
                code="order_id_conflict",
            )
        return await self._view(conn, row._mapping)

    # ----- reading ----------------------------------------------------------------------------
    # An order's view is its row, its quotes and its payments: read in one snapshot, or a change
    # committed between the statements shows a payment rejected on an order still paid.

    async def get(self, merchant_pk: int, ref: str) -> dict[str, Any]:
        async with self.db.snapshot() as conn:
            row = await self._find(conn, merchant_pk, ref)
            return await self._view(conn, row._mapping)

    async def get_public(self, order_id: str) -> tuple[dict[str, Any], Merchant]:
        """For the checkout page: by Kassa id only (the id is the capability)."""
        async with self.db.snapshot() as conn:
            row = (await conn.execute(select(orders).where(orders.c.id == order_id))).first()
            if row is None:
                raise NotFound(f"no order {order_id!r}", param="id")
            merchant = await load_merchant(conn, pk=row.merchant_pk)
            return await self._view(conn, row._mapping), merchant

    async def version(self, order_id: str) -> int | None:
        async with self.db.read() as conn:
            value = (await conn.execute(select(orders.c.version).where(orders.c.id == order_id))).scalar()
            return int(value) if value is not None else None

    async def page(
        self,
        merchant_pk: int,
        *,
        limit: int,
        starting_after: str | None = None,
        **filters: Unpack[ListFilters],
    ) -> tuple[list[dict[str, Any]], bool]:
        async with self.db.snapshot() as conn:
            rows, more = await _newest_orders(
                conn, merchant_pk, limit, starting_after, filters, summary=False
            )
            return await self._views(conn, rows), more

    async def summaries(
        self,
        merchant_pk: int,
        *,
        limit: int,
        starting_after: str | None = None,
        **filters: Unpack[ListFilters],
    ) -> tuple[list[dict[str, Any]], bool]:
        """`page`'s orders, filters and cursor, as one line each (the dashboard's list): the order's
        own columns only, in one query, without its quotes and payments."""
        async with self.db.read() as conn:
            rows, more = await _newest_orders(conn, merchant_pk, limit, starting_after, filters, summary=True)
        return [order_summary(r) for r in rows], more

    async def _find(self, conn: AsyncConnection, merchant_pk: int, ref: str, lock: bool = False) -> Any:
        """By Kassa id, else by the merchant's own order id; never another merchant's order."""
        query = select(orders).where(
            orders.c.merchant_pk == merchant_pk,
            or_(orders.c.id == ref, orders.c.merchant_order_id == ref),
        )
        if lock:
            query = query.with_for_update()
        rows = (await conn.execute(query)).all()
        if not rows:
            raise NotFound(f"no order {ref!r}", param="id")
        return next((r for r in rows if r.id == ref), rows[0])

    async def _view(self, conn: AsyncConnection, row: Row) -> dict[str, Any]:
        return (await self._views(conn, [row]))[0]

    async def _views(self, conn: AsyncConnection, rows: Sequence[Row]) -> list[dict[str, Any]]:
        if not rows:
            return []
        pks = [r["pk"] for r in rows]
        qrows = (
            await conn.execute(select(quotes).where(quotes.c.order_pk.in_(pks)).order_by(quotes.c.pk))
        ).all()
        prows = (
            await conn.execute(select(payments).where(payments.c.order_pk.in_(pks)).order_by(payments.c.pk))
        ).all()
        by_q: dict[int, list[Row]] = {}
        by_p: dict[int, list[Row]] = {}
        for q in qrows:
            by_q.setdefault(q.order_pk, []).append(q._mapping)
        for p in prows:
            by_p.setdefault(p.order_pk, []).append(p._mapping)
        return [order_view(r, by_q.get(r["pk"], []), by_p.get(r["pk"], []), self.base_url) for r in rows]

    # ----- moves ------------------------------------------------------------------------------

    async def cancel(self, merchant_pk: int | None, ref: str) -> dict[str, Any]:
        """Cancel an open order (merchant through the API, or the customer on the page)."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            if merchant_pk is None:
                row = await self._lock_public(tx.conn, ref)
            else:
                row = await self._find(tx.conn, merchant_pk, ref, lock=True)
            payment_rows = await self._payments(tx.conn, row.pk)
            step = self._advance(row._mapping, payment_rows, now)  # expire first if it is due
            try:
                step = _chain(step, cancel(step.state, now))
            except TransitionError as exc:
                if step.changed:
                    await self._persist(tx, row._mapping, step, payment_rows, now)
                    return await self._view(tx.conn, await self._reload(tx.conn, row.pk))
                raise Conflict(str(exc), code="order_not_open") from None
            await self._persist(tx, row._mapping, step, payment_rows, now)
            return await self._view(tx.conn, await self._reload(tx.conn, row.pk))

    async def mark(self, merchant_pk: int, ref: str, to: OrderStatus) -> dict[str, Any]:
        """Settle an order by hand or declare it invalid (domain.orders.mark); marking it as it
        already is, marked, changes nothing."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            row = await self._find(tx.conn, merchant_pk, ref, lock=True)
            payment_rows = await self._payments(tx.conn, row.pk)
            step = self._advance(row._mapping, payment_rows, now)  # expire first if it is due
            if step.state.status is to and step.state.exception is OrderException.MARKED:
                if step.changed:
                    await self._persist(tx, row._mapping, step, payment_rows, now)
                return await self._view(tx.conn, await self._reload(tx.conn, row.pk))
            try:
                step = _chain(step, mark(step.state, to, now))
            except TransitionError as exc:
                if step.changed:
                    await self._persist(tx, row._mapping, step, payment_rows, now)
                raise Conflict(str(exc), code="order_not_markable") from None
            await self._persist(tx, row._mapping, step, payment_rows, now)
            return await self._view(tx.conn, await self._reload(tx.conn, row.pk))

    async def set_archived(self, merchant_pk: int, ref: str, archived: bool) -> dict[str, Any]:
        """Archive an order (left out of lists that leave archived ones out) or bring it back. Not a
        change of the order's state: no event, and its version stays."""
        async with self.db.transaction() as tx:
            row = await self._find(tx.conn, merchant_pk, ref, lock=True)
            if row.archived != archived:
                await tx.conn.execute(update(orders).where(orders.c.pk == row.pk).values(archived=archived))
            return await self._view(tx.conn, await self._reload(tx.conn, row.pk))

    async def set_metadata(self, merchant_pk: int, ref: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """Replace the merchant's metadata of an order (theirs alone: no rule reads it)."""
        async with self.db.transaction() as tx:
            row = await self._find(tx.conn, merchant_pk, ref, lock=True)
            await tx.conn.execute(
                update(orders)
                .where(orders.c.pk == row.pk)
                .values(metadata=metadata, version=row.version + 1, updated_at=self.clock.now())
            )
            tx.order_changed(row.id)
            return await self._view(tx.conn, await self._reload(tx.conn, row.pk))

    async def search(
        self,
        merchant_pk: int,
        *,
        statuses: Sequence[OrderStatus] = (),
        shop_order_ids: Sequence[str] = (),
        created_gte: datetime | None = None,
        created_lte: datetime | None = None,
        include_archived: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first, by offset (Greenfield's skip/take): the lists that cannot use a cursor."""
        query = select(orders).where(orders.c.merchant_pk == merchant_pk)
        if statuses:
            query = query.where(orders.c.status.in_([s.value for s in statuses]))
        if shop_order_ids:  # the shop's own order number, kept in metadata (several orders may share it)
            query = query.where(orders.c.metadata["orderId"].as_string().in_(list(shop_order_ids)))
        if created_gte is not None:
            query = query.where(orders.c.created_at >= created_gte)
        if created_lte is not None:
            query = query.where(orders.c.created_at <= created_lte)
        if not include_archived:
            query = query.where(orders.c.archived.is_(False))
        query = query.order_by(orders.c.pk.desc()).offset(offset).limit(limit)
        async with self.db.snapshot() as conn:
            rows = [r._mapping for r in await conn.execute(query)]
            return await self._views(conn, rows)

    async def paid_volume(self, merchant_pk: int, days: int = 30) -> dict[str, dict[date, int]]:
        """Per currency, the amount of the orders paid on each of the last `days` days (UTC), in
        minor units; days without a payment are left out."""
        since = datetime.combine(self.clock.now().date() - timedelta(days=days - 1), time(), tzinfo=UTC)
        query = select(orders.c.paid_at, orders.c.currency, orders.c.amount).where(
            orders.c.merchant_pk == merchant_pk,
            orders.c.status == OrderStatus.PAID.value,
            orders.c.paid_at >= since,
        )
        volume: dict[str, dict[date, int]] = {}
        async with self.db.read() as conn:
            for row in await conn.execute(query):
                day = row.paid_at.astimezone(UTC).date()
                per_day = volume.setdefault(row.currency, {})
                per_day[day] = per_day.get(day, 0) + row.amount
        return volume

    async def choose_method(self, merchant_pk: int | None, ref: str, method: str) -> dict[str, Any]:
        """Pick the payment method; allocates its destination (a rail call, outside any transaction)
        and re-quotes when the quote's deadline passed, which is allowed only while nothing was paid."""
        async with self.db.read() as conn:
            row = (await self._lookup(conn, merchant_pk, ref))._mapping
            quote = await self._quote_for(conn, row, method)
            configs = {
                c.rail: c for c in await self.rails.configs(conn, row["merchant_pk"], enabled_only=False)
            }
            quote_at = (await self._merchant_context(conn, row["merchant_pk"]))[0].quote_at
        now = self.clock.now()
        _check_choice(row, method)
        request = _quote_request(row, self.base_url)
        changes: dict[str, Any] = {}
        config = configs.get(quote["rail"])
        if config is None:
            raise Conflict(f"payment rail {quote['rail']!r} is no longer configured", code="rail_unavailable")
        stale = quote["expires_at"] <= now or (quote_at == "method_choice" and row["method"] != method)
        if stale and not row["amount_received"]:
            spec = next((m for m in get_rail(config.rail).methods(config) if m.method == method), None)
            if spec is None:
                raise Conflict(f"payment method {method!r} is no longer offered", code="rail_unavailable")
            fresh = await self.quoter.quote(request, spec, now)
            changes.update(amount=fresh.amount, rate=str(fresh.rate), expires_at=fresh.expires_at)
        if quote["destination"] is None or "amount" in changes:
            latest = {**quote, **changes}
            current = Quote(method, quote["currency"], latest["amount"], Decimal(1), latest["expires_at"])
            # A refreshed quote keeps the allocated address; only its payment URI changes.
            dest = await self._destination(config, row["merchant_pk"], request, current, quote["destination"])
            changes.update(destination=dest.address, payment_uri=dest.payment_uri, note=dest.note)
        async with self.db.transaction() as tx:
            locked = (
                (await tx.conn.execute(select(orders).where(orders.c.pk == row["pk"]).with_for_update()))
                .one()
                ._mapping
            )
            _check_choice(locked, method)
            if locked["method"] != method and await self._payments(tx.conn, locked["pk"]):
                raise Conflict(
                    "a payment was already seen for another method", code="method_locked", param="method"
                )
            if changes:
                await tx.conn.execute(
                    update(quotes)
                    .where(quotes.c.order_pk == locked["pk"], quotes.c.method == method)
                    .values(**changes)
                )
            if locked["method"] != method or "amount" in changes:
                due = changes.get("amount", quote["amount"])
                await tx.conn.execute(
                    update(orders)
                    .where(orders.c.pk == locked["pk"])
                    .values(method=method, amount_due=due, version=orders.c.version + 1, updated_at=now)
                )
                tx.order_changed(locked["id"])
            elif changes:
                await tx.conn.execute(
                    update(orders)
                    .where(orders.c.pk == locked["pk"])
                    .values(version=orders.c.version + 1, updated_at=now)
                )
                tx.order_changed(locked["id"])
            return await self._view(tx.conn, await self._reload(tx.conn, locked["pk"]))

    async def _merchant_context(
        self, conn: AsyncConnection, merchant_pk: int
    ) -> tuple[Merchant, list[RailConfig]]:
        """The merchant's settings and enabled rails, from the hot-path cache when fresh."""
        context = self.merchant_cache.get(merchant_pk)
        if context is None:
            context = (await load_merchant(conn, pk=merchant_pk), await self.rails.configs(conn, merchant_pk))
            self.merchant_cache.put(merchant_pk, context)
        return context

    async def _lookup(self, conn: AsyncConnection, merchant_pk: int | None, ref: str) -> Any:
        if merchant_pk is not None:
            return await self._find(conn, merchant_pk, ref)
        row = (await conn.execute(select(orders).where(orders.c.id == ref))).first()
        if row is None:
            raise NotFound(f"no order {ref!r}", param="id")
        return row

    async def _quote_for(self, conn: AsyncConnection, row: Row, method: str) -> Row:
        quote = (
            await conn.execute(
                select(quotes).where(quotes.c.order_pk == row["pk"], quotes.c.method == method)
            )
        ).first()
        if quote is None:
            raise InvalidRequest(
                f"this order does not offer {method!r}; it offers {', '.join(row['payment_methods'])}",
                param="method",
            )
        return quote._mapping

    async def lock_current(self, tx: Tx, order_pk: int) -> tuple[Row, OrderState]:
        """Lock the order and apply the clock to it (an expiry that is due is written now);
        its row and its state as of now."""
        row = (await tx.conn.execute(select(orders).where(orders.c.pk == order_pk).with_for_update())).one()
        payment_rows = await self._payments(tx.conn, row.pk)
        step = self._advance(row._mapping, payment_rows, self.clock.now())
        if step.changed:
            await self._persist(tx, row._mapping, step, payment_rows, self.clock.now())
            return await self._reload(tx.conn, row.pk), step.state
        return row._mapping, step.state

    async def observe(
        self, order_pk: int, obs: Observation, within: Callable[[Tx], Awaitable[None]] | None = None
    ) -> dict[str, Any]:
        """Record what a rail saw of one transfer to this order, then move the order. `within`
        runs in the same transaction (what made the observation, recorded atomically with it)."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            row = (
                await tx.conn.execute(select(orders).where(orders.c.pk == order_pk).with_for_update())
            ).one()
            if row.method is None:
                raise Conflict("no payment method chosen for this order yet", code="no_method", param="order")
            quote = (
                await tx.conn.execute(
                    select(quotes).where(quotes.c.order_pk == row.pk, quotes.c.method == row.method)
                )
            ).one()
            payment_rows = await self._payments(tx.conn, row.pk)
            terms = _terms(row._mapping)
            pre = self._advance(row._mapping, payment_rows, now)  # e.g. expire it if that is due
            existing = next(
                (p for p in payment_rows if p["rail"] == obs.rail and p["reference"] == obs.reference), None
            )
            payment_events: list[tuple[str, Row]] = []
            if existing is None:
                late = arrives_late(pre.state.status)
                status = payment_status(PaymentFacts(obs.amount, obs.confirmations, obs.rejected), terms)
                new = {
                    "id": new_id("pay"),
                    "order_pk": row.pk,
                    "merchant_pk": row.merchant_pk,
                    "rail": obs.rail,
                    "method": row.method,
                    "currency": quote.currency,
                    "amount": obs.amount,
                    "reference": obs.reference,
                    "confirmations": obs.confirmations,
                    "status": status.value,
                    "late": late,
                    "replaceable": obs.replaceable and obs.confirmations == 0,
                    "test": row.test,
                    "seen_at": now,
                    "confirmed_at": now if status is PaymentStatus.CONFIRMED else None,
                    "rejected_at": now if status is PaymentStatus.REJECTED else None,
                    "updated_at": now,
                }
                await tx.conn.execute(insert(payments).values(**new))
                payment_rows = [*payment_rows, new]
                # Seen first as rejected (a declined card, a transfer already double-spent): it was
                # never received.
                payment_events.append(
                    ("payment.rejected" if status is PaymentStatus.REJECTED else "payment.received", new)
                )
                if status is PaymentStatus.CONFIRMED:
                    payment_events.append(("payment.confirmed", new))
            else:
                changed = _payment_update(existing, obs, terms, now)
                if changed is not None:
                    values, event = changed
                    await tx.conn.execute(
                        update(payments).where(payments.c.pk == existing["pk"]).values(**values)
                    )
                    merged = {**existing, **values}
                    payment_rows = [merged if p is existing else p for p in payment_rows]
                    if event:
                        payment_events.append((event, merged))
            step = _chain(pre, self._advance(row._mapping, payment_rows, now, pre.state))
            if step.changed or payment_events:
                await self._persist(tx, row._mapping, step, payment_rows, now, payment_events)
            if within is not None:
                await within(tx)
            return await self._view(tx.conn, await self._reload(tx.conn, row.pk))

    async def renew_destination(self, order_pk: int, method: str, spent: str) -> dict[str, Any]:
        """Give an open order a fresh destination for `method` in place of `spent` (a gateway takes
        each order number once). Nothing changes when the quote moved on already or the order is
        no longer open."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(orders).where(orders.c.pk == order_pk))).one()._mapping
            quote = await self._quote_for(conn, row, method)
            configs = {c.rail: c for c in await self.rails.configs(conn, row["merchant_pk"])}
        config = configs.get(quote["rail"])
        if row["status"] != OrderStatus.OPEN.value or quote["destination"] != spent or config is None:
            async with self.db.read() as conn:
                return await self._view(conn, row)
        request = _quote_request(row, self.base_url)
        current = Quote(
            method, quote["currency"], quote["amount"], Decimal(quote["rate"]), quote["expires_at"]
        )
        dest = await self._destination(config, row["merchant_pk"], request, current)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            result = await tx.conn.execute(
                update(quotes)
                .where(quotes.c.pk == quote["pk"], quotes.c.destination == spent)
                .values(destination=dest.address, payment_uri=dest.payment_uri, note=dest.note)
            )
            if result.rowcount:
                await tx.conn.execute(
                    update(orders)
                    .where(orders.c.pk == order_pk)
                    .values(version=orders.c.version + 1, updated_at=now)
                )
                tx.order_changed(row["id"])
            return await self._view(tx.conn, await self._reload(tx.conn, order_pk))

    async def _destination(
        self,
        config: RailConfig,
        merchant_pk: int,
        request: QuoteRequest,
        quote: Quote,
        address: str | None = None,
    ) -> Destination:
        """The rail's destination for this quote; for a rail that derives addresses from the
        merchant's key, the core allocates the index first (a rail call, outside any transaction)."""
        rail = get_rail(config.rail)
        if address is None:
            keychain = keychain_of(rail, config)
            if keychain is not None:
                try:
                    address = (
                        await self.addresses.allocate(keychain, config.rail, merchant_pk, request.order_id)
                    ).address
                except KeyExhausted as exc:
                    raise Conflict(str(exc), code="rail_unavailable", param="payment_methods") from None
        return await rail.prepare(config, request, quote, address)

    async def refresh(self, order_pk: int) -> bool:
        """Apply the clock to one order (expiry, monitoring window); True when it moved."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            row = (
                await tx.conn.execute(select(orders).where(orders.c.pk == order_pk).with_for_update())
            ).first()
            if row is None:
                return False
            payment_rows = await self._payments(tx.conn, row.pk)
            step = self._advance(row._mapping, payment_rows, now)
            if step.changed:
                await self._persist(tx, row._mapping, step, payment_rows, now)
            return step.changed

    async def due(self, limit: int = 200) -> list[int]:
        """Orders whose timer or monitoring window has run out."""
        now = self.clock.now()
        query = (
            select(orders.c.pk)
            .where(
                or_(
                    and_(orders.c.status == OrderStatus.OPEN.value, orders.c.expires_at <= now),
                    and_(orders.c.status == OrderStatus.PROCESSING.value, orders.c.invalid_at <= now),
                )
            )
            .order_by(orders.c.pk)
            .limit(limit)
        )
        if self.db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        async with self.db.transaction() as tx:
            return [r.pk for r in await tx.conn.execute(query)]

    # ----- internals ----------------------------------------------------------------------

    async def _lock_public(self, conn: AsyncConnection, order_id: str) -> Any:
        row = (await conn.execute(select(orders).where(orders.c.id == order_id).with_for_update())).first()
        if row is None:
            raise NotFound(f"no order {order_id!r}", param="id")
        return row

    async def _reload(self, conn: AsyncConnection, pk: int) -> Row:
        return (await conn.execute(select(orders).where(orders.c.pk == pk))).one()._mapping

    async def _payments(self, conn: AsyncConnection, order_pk: int) -> list[Row]:
        rows = await conn.execute(
            select(payments).where(payments.c.order_pk == order_pk).order_by(payments.c.pk)
        )
        return [r._mapping for r in rows]

    def _advance(
        self,
        row: Row,
        payment_rows: Sequence[Row],
        now: datetime,
        state: OrderState | None = None,
    ) -> Step:
        facts = [PaymentFacts.of(p) for p in payment_rows]
        return advance(state or _state(row), _terms(row), facts, now)

    async def _persist(
        self,
        tx: Tx,
        row: Row,
        step: Step,
        payment_rows: Sequence[Row],
        now: datetime,
        payment_events: Sequence[tuple[str, Row]] = (),
    ) -> None:
        values = {**_state_values(step.state, row), "updated_at": now}
        qrows = [
            q._mapping for q in await tx.conn.execute(select(quotes).where(quotes.c.order_pk == row["pk"]))
        ]
        # What this change makes due back to the customer, set aside now (services/refund_rules.py).
        rule_refunds = await due_by_rule(tx, {**row, **values}, qrows, payment_rows, now)
        seq = row["event_seq"]
        values["event_seq"] = seq + len(step.events) + len(payment_events) + len(rule_refunds)
        values["version"] = row["version"] + 1
        await tx.conn.execute(update(orders).where(orders.c.pk == row["pk"]).values(**values))
        snapshot = {**row, **values}
        for event, payment in payment_events:
            await _post_payment(tx, row, event, payment, now)
            seq += 1
            await emit(
                tx,
                merchant_pk=row["merchant_pk"],
                type=event,
                object_type="payment",
                object_id=payment["id"],
                order_id=row["id"],
                sequence=seq,
                data=payment_view(payment, row["id"]),
                test=row["test"],
                now=now,
                callback_url=row["callback_url"],
            )
        for event, state in zip(step.events, step.states, strict=True):
            seq += 1
            at_that_moment = {**snapshot, **_state_values(state, row), "event_seq": seq}
            await emit(
                tx,
                merchant_pk=row["merchant_pk"],
                type=event,
                object_type="order",
                object_id=row["id"],
                order_id=row["id"],
                sequence=seq,
                data=order_view(at_that_moment, qrows, payment_rows, self.base_url),
                test=row["test"],
                now=now,
                callback_url=row["callback_url"],
                customer_email=row["email"],
                customer_locale=row["locale"],
            )
        for refund in rule_refunds:
            seq += 1
            await emit(
                tx,
                merchant_pk=row["merchant_pk"],
                type="refund.created",
                object_type="refund",
                object_id=refund["id"],
                order_id=row["id"],
                sequence=seq,
                data=refund_view(refund, row["id"], self.refund_links),
                test=row["test"],
                now=now,
                callback_url=row["callback_url"],
                customer_email=row["email"],
                customer_locale=row["locale"],
            )
        tx.order_changed(row["id"])


async def _newest_orders(
    conn: AsyncConnection,
    merchant_pk: int,
    limit: int,
    starting_after: str | None,
    filters: ListFilters,
    *,
    summary: bool,
) -> tuple[list[Any], bool]:
    """A merchant's orders, newest first, with the list filters of the API and the dashboard; whole
    rows, or the `summary` columns only."""
    cursor = await cursor_pk(conn, orders, orders.c.merchant_pk == merchant_pk, starting_after, "order")
    given = {name: value for name, value in filters.items() if value is not None}
    query = _list_query(frozenset(given), cursor is not None, summary)
    return await page_of(conn, query, {**given, "merchant_pk": merchant_pk}, cursor, limit)


class ListFilters(TypedDict, total=False):
    """The filters of an order list; a filter left out or None does not filter."""

    status: str | None
    created_gte: datetime | None
    created_lt: datetime | None
    merchant_order_id: str | None


_FILTERS: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "status": ("status", operator.eq),
    "created_gte": ("created_at", operator.ge),
    "created_lt": ("created_at", operator.lt),
    "merchant_order_id": ("merchant_order_id", operator.eq),
}


@functools.cache
def _list_query(filters: frozenset[str], after_cursor: bool, summary: bool) -> Select[Any]:
    """The list's statement for one combination of filters, built once with its values bound at
    execution: building and keying it anew took the dashboard's orders page as long as the database
    took to run it (bench/dashboard_orders)."""
    columns = [orders.c[c] for c in SUMMARY_COLUMNS] if summary else [orders]
    query = select(*columns).where(orders.c.merchant_pk == bindparam("merchant_pk"))
    for name in sorted(filters):
        column, op = _FILTERS[name]
        query = query.where(op(orders.c[column], bindparam(name, type_=orders.c[column].type)))
    return paged(orders, query, after_cursor)


def _methods(configs: list[RailConfig], requested: list[str] | None) -> list[tuple[MethodSpec, RailConfig]]:
    available: dict[str, tuple[MethodSpec, RailConfig]] = {}
    for config in configs:
        for spec in get_rail(config.rail).methods(config):
            available.setdefault(spec.method, (spec, config))
    if not available:
        raise Conflict(
            "this merchant has no payment method enabled", param="payment_methods", code="no_payment_method"
        )
    if requested is None:
        return [available[m] for m in sorted(available)]
    if not requested:
        raise InvalidRequest("payment_methods must not be empty", param="payment_methods")
    unknown = [m for m in requested if m not in available]
    if unknown:
        raise InvalidRequest(
            f"payment method(s) not enabled for this merchant: {', '.join(unknown)}; "
            f"enabled: {', '.join(sorted(available))}",
            param="payment_methods",
        )
    return [available[m] for m in dict.fromkeys(requested)]


def _default_confirmations(methods: list[tuple[MethodSpec, RailConfig]], merchant_default: int) -> int:
    """When the order does not say: the strictest default of the methods it offers, each method's
    being its rail's `confirmations` setting if the merchant set one, else the merchant's default."""
    defaults = []
    for _, config in methods:
        value = config.settings.get("confirmations")
        defaults.append(value if isinstance(value, int) and not isinstance(value, bool) else merchant_default)
    return max(defaults, default=merchant_default)


async def _post_payment(tx: Tx, order: Row, event: str, payment: Row, now: datetime) -> None:
    """The ledger's side of a payment event, in the same transaction: final money is the merchant's;
    a final payment undone (a reorg deeper than the required confirmations) is taken back."""
    if event == "payment.confirmed":
        posting = payment_confirmed(payment["id"], payment["currency"], payment["amount"])
    elif event == "payment.rejected" and await ledger.posted(
        tx, order["merchant_pk"], payment_confirmed_key(payment["id"])
    ):
        posting = payment_reversed(payment["id"], payment["currency"], payment["amount"])
    else:
        return
    await ledger.post(tx, order["merchant_pk"], posting, test=order["test"], now=now, order_id=order["id"])


def _quote_request(row: Row, base_url: str) -> QuoteRequest:
    return QuoteRequest(
        row["id"], row["amount"], row["currency"], row["expires_at"], row["merchant_order_id"], base_url
    )


def _check_choice(row: Row, method: str) -> None:
    if row["status"] != OrderStatus.OPEN.value:
        raise Conflict(
            f"the order is {row['status']}; a method can only be chosen while it is open",
            code="order_not_open",
        )


def _chain(first: Step, second: Step) -> Step:
    return Step(second.state, first.events + second.events, first.states + second.states)


def _terms(row: Row) -> OrderTerms:
    due = row["amount_due"] if row["amount_due"] is not None else row["amount"]
    return OrderTerms(
        amount_due=due,
        tolerance=tolerance_for(due, row["tolerance_bps"]),
        confirmations=row["confirmations"],
        monitoring_window=timedelta(seconds=row["monitoring_window"]),
        late_policy=LatePaymentPolicy(row["late_payment_policy"]),
    )


def _state(row: Row) -> OrderState:
    remaining = row["timer_remaining"]
    return OrderState(
        status=OrderStatus(row["status"]),
        expires_at=row["expires_at"],
        exception=OrderException(row["exception"]) if row["exception"] else None,
        amount_received=row["amount_received"],
        amount_confirmed=row["amount_confirmed"],
        processing_since=row["processing_since"],
        timer_remaining=timedelta(seconds=remaining) if remaining is not None else None,
        late=row["late"],
        paid_at=row["paid_at"],
        closed_at=row["closed_at"],
    )


def _state_values(state: OrderState, row: Row) -> dict[str, Any]:
    window = timedelta(seconds=row["monitoring_window"])
    return {
        "status": state.status.value,
        "exception": state.exception.value if state.exception else None,
        "amount_received": state.amount_received,
        "amount_confirmed": state.amount_confirmed,
        "expires_at": state.expires_at,
        "timer_remaining": state.timer_remaining.total_seconds()
        if state.timer_remaining is not None
        else None,
        "processing_since": state.processing_since,
        "invalid_at": state.processing_since + window if state.processing_since else None,
        "late": state.late,
        "paid_at": state.paid_at,
        "closed_at": state.closed_at,
    }


def _payment_update(
    existing: Row, obs: Observation, terms: OrderTerms, now: datetime
) -> tuple[dict[str, Any], str | None] | None:
    """How a repeated observation changes a stored payment: confirmations only grow, and a
    rejection is final. None when nothing changes (a replay)."""
    if existing["status"] == PaymentStatus.REJECTED.value:
        return None
    if obs.rejected:
        return {
            "status": PaymentStatus.REJECTED.value,
            "rejected_at": now,
            "updated_at": now,
        }, "payment.rejected"
    confirmations = max(existing["confirmations"], obs.confirmations)
    replaceable = obs.replaceable and confirmations == 0
    if confirmations == existing["confirmations"] and replaceable == bool(existing.get("replaceable")):
        return None
    status = payment_status(PaymentFacts(existing["amount"], confirmations), terms)
    values: dict[str, Any] = {
        "confirmations": confirmations,
        "status": status.value,
        "replaceable": replaceable,
        "updated_at": now,
    }
    event = None
    if status is PaymentStatus.CONFIRMED and existing["status"] != PaymentStatus.CONFIRMED.value:
        values["confirmed_at"] = now
        event = "payment.confirmed"
    return values, event
