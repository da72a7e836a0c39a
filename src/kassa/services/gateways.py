"""Gateway rails (card gateways): the payer's form to the gateway's page, and the gateway's pushed
notification matched to the stored payment.

A notification is read by the rail, which verifies it before reading anything (`Rail.notified`).
Then, here: it must name a payment Kassa issued (the quote's destination, or a payment recorded
from it before) for this merchant and rail, for exactly the amount stored; a repeat changes
nothing, and a failure never downgrades a payment already made. A paid notice is final: it is
recorded with the order's required confirmations. A failed one is recorded as a rejected payment
(the merchant hears `payment.rejected` with the gateway's reason), and the order, still open, gets
a fresh destination: a gateway takes each order number once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from kassa.db.database import Database
from kassa.db.tables import orders, payments, quotes
from kassa.domain.orders import OrderStatus, PaymentStatus
from kassa.errors import Conflict, InvalidRequest, KassaError, NotFound
from kassa.rails.base import FormRequest, GatewayUnsupported, Notice, NoticeInvalid, PaymentForm, RailConfig
from kassa.rails.registry import get_rail
from kassa.services.orders import Observation, OrderService
from kassa.services.payment_methods import PaymentMethodService

log = logging.getLogger("kassa.gateways")


def gateway_notify_url(base_url: str, rail: str, merchant_id: str) -> str:
    """Kassa's own NotifyURL for a merchant's gateway rail (api/routes_gateways.py)."""
    return f"{base_url}/gateways/{quote(rail, safe='')}/notify/{quote(merchant_id, safe='')}"


@dataclass(frozen=True, slots=True)
class GatewayUrls:
    notify_url: str  # where the gateway POSTs its notification
    return_url: str  # where the gateway sends the payer back (a POST)
    back_url: str | None = None  # a link back while on the gateway's page


@dataclass(frozen=True, slots=True)
class NoticeOutcome:
    notice: Notice
    order: dict[str, Any]  # the order as it is now
    changed: bool  # False: a repeat, a pending notice, or a failure after a payment


class GatewayService:
    def __init__(self, db: Database, orders_service: OrderService, methods: PaymentMethodService) -> None:
        self.db = db
        self.orders = orders_service
        self.methods = methods

    async def _config(self, merchant_pk: int, rail: str) -> RailConfig:
        config = await self.methods.config(merchant_pk, rail)
        if config is None:
            raise NotFound(f"payment rail {rail!r} is not enabled for this merchant", param="rail")
        return config

    async def form(
        self, order_id: str, urls: GatewayUrls, method: str | None = None, language: str | None = None
    ) -> tuple[PaymentForm, dict[str, Any]]:
        """A fresh signed form to the gateway's page for this order (by its Kassa id)."""
        view, merchant = await self.orders.get_public(order_id)
        method = method or view["method"]
        if method is None:
            raise InvalidRequest("choose a payment method first", param="method")
        if view["status"] != OrderStatus.OPEN.value:
            raise Conflict(f"the order is {view['status']}; it takes no payment", code="order_not_open")
        if view["method"] != method or not _quote(view, method)["address"]:
            view = await self.orders.choose_method(None, order_id, method)
        quote = _quote(view, method)
        config = await self._config(merchant.pk, quote["rail"])
        request = FormRequest(
            order_id=view["id"],
            destination=quote["address"],
            amount=quote["amount"],
            currency=quote["currency"],
            description=view["description"],
            email=view["email"],
            language=language,
            notify_url=urls.notify_url,
            return_url=urls.return_url,
            back_url=urls.back_url,
        )
        try:
            return get_rail(config.rail).payment_form(config, request), view
        except GatewayUnsupported as exc:
            raise Conflict(str(exc), code="gateway_unsupported", param="method") from None

    async def receive(self, merchant_pk: int, rail: str, body: dict[str, str]) -> NoticeOutcome:
        """Verify a gateway's notification and record what it says (see the module's docstring)."""
        config = await self._config(merchant_pk, rail)
        try:
            notice = get_rail(rail).notified(config, body)
        except GatewayUnsupported as exc:
            raise InvalidRequest(str(exc), code="gateway_unsupported", param="rail") from None
        except NoticeInvalid as exc:
            log.warning("%s: merchant %s: notification refused: %s", rail, config.merchant_id, exc)
            raise InvalidRequest(str(exc), code="notice_invalid") from None
        async with self.db.read() as conn:
            known = (
                await conn.execute(
                    select(payments.c.order_pk, payments.c.amount, orders.c.id)
                    .join(orders, orders.c.pk == payments.c.order_pk)
                    .where(
                        payments.c.merchant_pk == merchant_pk,
                        payments.c.rail == rail,
                        payments.c.reference == notice.reference,
                    )
                )
            ).first()
            issued = (
                None
                if known is not None
                else (
                    await conn.execute(
                        select(
                            orders.c.pk,
                            orders.c.id,
                            orders.c.method,
                            orders.c.confirmations,
                            quotes.c.method.label("quote_method"),
                            quotes.c.amount,
                        )
                        .join(quotes, quotes.c.order_pk == orders.c.pk)
                        .where(
                            orders.c.merchant_pk == merchant_pk,
                            quotes.c.rail == rail,
                            quotes.c.destination == notice.destination,
                        )
                    )
                ).first()
            )
        if known is not None:  # a repeat (or a failure after this very payment): nothing changes
            _check_amount(notice, known.amount, known.id)
            return NoticeOutcome(notice, await self.orders.get(merchant_pk, known.id), changed=False)
        if issued is None:
            raise NotFound(
                f"no payment {notice.destination!r} was issued through {rail}", param="destination"
            )
        _check_amount(notice, issued.amount, issued.id)
        if notice.outcome == "pending":
            return NoticeOutcome(notice, await self.orders.get(merchant_pk, issued.id), changed=False)
        if notice.outcome == "failed" and await self._has_payment(issued.pk, rail):
            log.info("%s: order %s: a failure after a payment was made; ignored", rail, issued.id)
            return NoticeOutcome(notice, await self.orders.get(merchant_pk, issued.id), changed=False)
        if issued.method != issued.quote_method:
            try:  # paid on a method's page without (or after) choosing another
                await self.orders.choose_method(merchant_pk, issued.id, issued.quote_method)
            except KassaError as exc:
                log.warning("%s: order %s: %s", rail, issued.id, exc.message)
        failed = notice.outcome == "failed"
        obs = Observation(
            rail, notice.reference, issued.amount, 0 if failed else issued.confirmations, failed
        )
        order = await self.orders.observe(issued.pk, obs)
        if failed:
            log.info("%s: order %s: payment failed: %s", rail, issued.id, notice.message or "no reason given")
            order = await self.orders.renew_destination(issued.pk, issued.quote_method, notice.destination)
        return NoticeOutcome(notice, order, changed=True)

    async def _has_payment(self, order_pk: int, rail: str) -> bool:
        async with self.db.read() as conn:
            found = (
                await conn.execute(
                    select(payments.c.pk).where(
                        payments.c.order_pk == order_pk,
                        payments.c.rail == rail,
                        payments.c.status != PaymentStatus.REJECTED.value,
                    )
                )
            ).first()
        return found is not None


def _quote(view: dict[str, Any], method: str) -> dict[str, Any]:
    for offered in view["payment_methods"]:
        if offered["method"] == method:
            return dict(offered)
    raise InvalidRequest(
        f"this order does not offer {method!r}; it offers "
        f"{', '.join(q['method'] for q in view['payment_methods'])}",
        param="method",
    )


def _check_amount(notice: Notice, stored: int, order_id: str) -> None:
    if notice.amount is not None and notice.amount != stored:
        log.error(
            "order %s: a verified notification says %s was charged, but %s is stored; refused",
            order_id,
            notice.amount,
            stored,
        )
        raise InvalidRequest(
            f"the notified amount {notice.amount} is not the stored amount {stored}", code="amount_mismatch"
        )
