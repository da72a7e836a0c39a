"""Payments a payer submits through Kassa to the merchant's wallet (proxy rails: Grin slates).

The order of things, so that nothing is paid twice and nothing is lost:

1. the rail reads the payload (what it offers: amount, reference) without any I/O;
2. in one transaction on the locked order: the domain says whether the order takes it
   (`submission_refusal`), and a `submissions` row is written `in_flight` (one per order at a time:
   a partial unique index, so a second payer gets 409 instead of paying twice);
3. outside any transaction the rail forwards the payload to the merchant's wallet;
4. its answer is recorded: `accepted` together with the payment it makes (one transaction, through
   `OrderService.observe`), or `refused` (the wallet said no), or `failed` (no answer: the wallet
   may still have it, so the rail's watcher keeps asking it about that reference for a while).

The same payload sent again gets the first answer again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from kassa.clock import Clock
from kassa.db.database import Database, Tx
from kassa.db.tables import orders, payments, submissions
from kassa.domain.orders import submission_refusal
from kassa.errors import Conflict, InvalidRequest, KassaError
from kassa.ids import new_id
from kassa.rails.base import (
    CounterpartUnavailable,
    Offer,
    PayloadInvalid,
    RailConfig,
    SubmissionRefused,
    SubmissionUnsupported,
    SubmitRequest,
)
from kassa.rails.registry import get_rail
from kassa.services.orders import Observation, OrderService
from kassa.services.payment_methods import PaymentMethodService

log = logging.getLogger("kassa.submissions")

STALE_AFTER = timedelta(minutes=5)
"""An `in_flight` submission older than this lost its answer (Kassa stopped mid-call)."""


class PaymentRefused(KassaError):
    """The merchant's wallet refused the payment; `answer` is what it said."""

    code = "payment_refused"

    def __init__(self, message: str, answer: Any) -> None:
        super().__init__(message)
        self.answer = answer


class WalletUnavailable(KassaError):
    status = 502
    type = "api_error"
    code = "wallet_unavailable"


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    answer: Any  # the wallet's answer, for the payer
    order: dict[str, Any]
    replayed: bool  # the same payload was accepted before; this is that first answer


class SubmissionService:
    def __init__(
        self, db: Database, clock: Clock, orders_service: OrderService, methods: PaymentMethodService
    ) -> None:
        self.db = db
        self.clock = clock
        self.orders = orders_service
        self.methods = methods

    async def submit(self, merchant_pk: int, ref: str, payload: Any) -> SubmitOutcome:
        """Forward a payer's payload for order `ref` (Kassa id or the merchant's order id)."""
        view = await self.orders.get(merchant_pk, ref)
        config, method, offer = await self._read(merchant_pk, view, payload)
        if view["method"] != method:
            view = await self.orders.choose_method(merchant_pk, view["id"], method)
        quote = next(q for q in view["payment_methods"] if q["method"] == method)
        order_pk, replay = await self._claim(merchant_pk, view["id"], config.rail, offer)
        if replay is not None:
            return SubmitOutcome(replay, await self.orders.get(merchant_pk, view["id"]), replayed=True)
        request = SubmitRequest(view["id"], quote["amount"], quote["currency"], quote["address"])
        try:
            submitted = await get_rail(config.rail).submit(config, request, payload)
        except SubmissionRefused as exc:
            await self._settle(order_pk, config.rail, offer, "refused", exc.answer, str(exc))
            raise PaymentRefused(f"the merchant's wallet refused the payment: {exc}", exc.answer) from None
        except CounterpartUnavailable as exc:
            await self._settle(order_pk, config.rail, offer, "failed", None, str(exc))
            raise WalletUnavailable(f"the merchant's wallet cannot be reached: {exc}") from None
        except BaseException as exc:  # cancelled mid-call, a bug: the outcome is unknown
            await self._settle(order_pk, config.rail, offer, "failed", None, type(exc).__name__)
            raise
        sighting = submitted.sighting
        obs = Observation(
            config.rail, sighting.reference, sighting.amount, sighting.confirmations, sighting.rejected
        )

        async def accepted(tx: Tx) -> None:
            await self._mark(tx, order_pk, config.rail, offer.reference, "accepted", submitted.answer, None)

        order = await self.orders.observe(order_pk, obs, within=accepted)
        return SubmitOutcome(submitted.answer, order, replayed=False)

    async def last_outcome(self, order_id: str) -> str | None:
        """The status of the order's latest submission (`refused` shows as REJECTED, say)."""
        async with self.db.read() as conn:
            value = (
                await conn.execute(
                    select(submissions.c.status)
                    .join(orders, orders.c.pk == submissions.c.order_pk)
                    .where(orders.c.id == order_id)
                    .order_by(submissions.c.pk.desc())
                    .limit(1)
                )
            ).scalar()
        return str(value) if value is not None else None

    # ----- internals ----------------------------------------------------------------------

    async def _read(
        self, merchant_pk: int, view: dict[str, Any], payload: Any
    ) -> tuple[RailConfig, str, Offer]:
        """The method of this order whose rail takes submissions, and what the payload offers."""
        async with self.db.read() as conn:
            configs = {c.rail: c for c in await self.methods.configs(conn, merchant_pk)}
        for quote in view["payment_methods"]:
            config = configs.get(quote["rail"])
            if config is None:
                continue
            try:
                offer = get_rail(config.rail).read_submission(config, payload)
            except SubmissionUnsupported:
                continue
            except PayloadInvalid as exc:
                raise InvalidRequest(str(exc), code="payload_invalid") from None
            return config, quote["method"], offer
        offered = ", ".join(q["method"] for q in view["payment_methods"]) or "none"
        raise Conflict(
            f"this order cannot be paid by a submitted transaction (its payment methods: {offered})",
            code="submission_unsupported",
        )

    async def _claim(
        self, merchant_pk: int, order_id: str, rail: str, offer: Offer
    ) -> tuple[int, Any | None]:
        """Check the order takes this payment and mark it in flight; (order pk, a replayed answer)."""
        now = self.clock.now()
        refused: tuple[str, str] | None = None
        try:
            async with self.db.transaction() as tx:
                order_pk = (
                    await tx.conn.execute(select(orders.c.pk).where(orders.c.id == order_id))
                ).scalar_one()
                row, state = await self.orders.lock_current(tx, order_pk)
                same = (
                    await tx.conn.execute(
                        select(submissions).where(
                            submissions.c.merchant_pk == merchant_pk,
                            submissions.c.rail == rail,
                            submissions.c.reference == offer.reference,
                        )
                    )
                ).first()
                if same is not None and same.order_pk != order_pk:
                    raise Conflict("this transaction was submitted for another order", code="reference_used")
                if same is not None and same.status == "accepted":
                    return order_pk, same.answer
                paid = (
                    await tx.conn.execute(
                        select(payments.c.pk).where(
                            payments.c.merchant_pk == merchant_pk,
                            payments.c.rail == rail,
                            payments.c.reference == offer.reference,
                        )
                    )
                ).first()
                if paid is not None:
                    raise Conflict("this transaction was already received", code="already_received")
                in_flight = (
                    await tx.conn.execute(
                        select(submissions.c.pk, submissions.c.updated_at).where(
                            submissions.c.order_pk == order_pk, submissions.c.status == "in_flight"
                        )
                    )
                ).first()
                if in_flight is not None:
                    if in_flight.updated_at > now - STALE_AFTER:
                        raise Conflict(
                            "a payment for this order is being submitted right now; wait for its answer",
                            code="submission_in_flight",
                        )
                    await tx.conn.execute(
                        update(submissions)
                        .where(submissions.c.pk == in_flight.pk)
                        .values(status="failed", error="no answer recorded (stale)", updated_at=now)
                    )
                refusal = submission_refusal(state, row["amount_due"], offer.amount)
                if refusal is not None:  # after the commit: an expiry that came due is kept
                    refused = refusal
                elif same is not None:  # refused or failed before: try again
                    await tx.conn.execute(
                        update(submissions)
                        .where(submissions.c.pk == same.pk)
                        .values(status="in_flight", answer=None, error=None, updated_at=now)
                    )
                else:
                    await tx.conn.execute(
                        insert(submissions).values(
                            id=new_id("sub"),
                            merchant_pk=merchant_pk,
                            order_pk=order_pk,
                            rail=rail,
                            reference=offer.reference,
                            amount=offer.amount,
                            status="in_flight",
                            created_at=now,
                            updated_at=now,
                        )
                    )
        except IntegrityError:  # a concurrent submission won the race for this order or reference
            raise Conflict(
                "a payment for this order is being submitted right now; wait for its answer",
                code="submission_in_flight",
            ) from None
        if refused is not None:
            code, message = refused
            if code == "amount_mismatch":
                raise InvalidRequest(message, code=code, param="amount")
            raise Conflict(message, code=code)
        return order_pk, None

    async def _settle(
        self, order_pk: int, rail: str, offer: Offer, status: str, answer: Any, error: str | None
    ) -> None:
        async with self.db.transaction() as tx:
            await self._mark(tx, order_pk, rail, offer.reference, status, answer, error)

    async def _mark(
        self, tx: Tx, order_pk: int, rail: str, reference: str, status: str, answer: Any, error: str | None
    ) -> None:
        await tx.conn.execute(
            update(submissions)
            .where(
                submissions.c.order_pk == order_pk,
                submissions.c.rail == rail,
                submissions.c.reference == reference,
            )
            .values(
                status=status,
                answer=answer,
                error=error[:500] if error else None,
                updated_at=self.clock.now(),
            )
        )
