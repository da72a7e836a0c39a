"""Payouts (docs/payouts.md): the merchant's balance paid from Kassa's wallet to the merchant's own.

A payout is made under a lock on the merchant, within the balance, and set aside in the ledger in
the same transaction (`payout:<id>:reserved`), recorded as `sending` before the rail is asked to
spend; the transaction goes out exactly once (services/sending.py). The withdrawal policy decides who
asks: the merchant (`manual`), or the worker after each final payment (`immediate`) or once a day at
the merchant's hour (`daily`, one payout per day however many orders it gathers).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kassa.clock import Clock
from kassa.db.database import Database, Tx
from kassa.db.pagination import newest_first
from kassa.db.tables import ledger_balances, merchants, payouts
from kassa.domain.ledger import Account, payout_paid, payout_released, payout_reserved
from kassa.domain.payouts import (
    PayoutOrigin,
    PayoutStatus,
    PayoutTransitionError,
    daily_period,
    move,
    operator_fee,
    payout_refusal,
)
from kassa.domain.withdrawals import WithdrawalPolicy
from kassa.errors import Conflict, InvalidRequest, NotFound
from kassa.ids import new_id
from kassa.rails.base import (
    CounterpartUnavailable,
    DestinationInvalid,
    Prepared,
    Rail,
    RailConfig,
    SendRefused,
    SendRequest,
    SendUnsupported,
)
from kassa.rails.registry import UnknownRail, get_rail
from kassa.services import ledger
from kassa.services.events import emit
from kassa.services.payment_methods import PaymentMethodService
from kassa.services.sending import Outbound, send_once, sent_rows, settled
from kassa.services.views import payout_view

log = logging.getLogger("kassa.payouts")

RESUME_AFTER = timedelta(seconds=30)
"""A payout left `sending` this long is resumed by the worker (its sender stopped or crashed)."""
FAILED_PAUSE = timedelta(hours=1)
"""After a policy's payout failed, the policy waits this long before it tries that balance again."""

EVENTS = {
    PayoutStatus.SENT: "payout.sent",
    PayoutStatus.CONFIRMED: "payout.confirmed",
    PayoutStatus.FAILED: "payout.failed",
    PayoutStatus.CANCELED: "payout.canceled",
}


class PayoutService:
    def __init__(self, db: Database, clock: Clock, methods: PaymentMethodService, fee_bps: int) -> None:
        self.db = db
        self.clock = clock
        self.methods = methods
        self.fee_bps = fee_bps

    # ----- the merchant's requests ---------------------------------------------------------

    async def create(
        self,
        merchant_pk: int,
        rail_name: str,
        *,
        currency: str | None = None,
        amount: int | None = None,
        destination: str | None = None,
        unsigned: bool = False,
    ) -> dict[str, Any]:
        """A manual payout: sent at once by Kassa's wallet, or (`unsigned`) built for the merchant's
        own wallet to sign and post back."""
        config, rail = await self._rail(merchant_pk, rail_name)
        if not unsigned and not rail.spends(config):
            raise Conflict(
                f"Kassa cannot spend from this {rail_name} wallet (configure a spend-capable wallet, "
                "or ask for an unsigned payout to sign with your own wallet)",
                code="rail_cannot_send",
            )
        currency = _currency(rail, config, currency)
        where = await _destination(rail, config, destination)
        payout = await self._reserve(
            config, rail, currency, amount, where, PayoutOrigin.MANUAL, None, unsigned=unsigned, strict=True
        )
        assert payout is not None
        if unsigned:
            return await self._build_unsigned(payout, config, rail)
        return await self.send(merchant_pk, payout["id"])

    async def submit_signed(self, merchant_pk: int, payout_id: str, signed: str) -> dict[str, Any]:
        """The merchant's wallet signed the payout's transaction: broadcast it."""
        payout = await self._get(merchant_pk, payout_id)
        if payout["status"] != PayoutStatus.AWAITING_SIGNATURE.value or payout["unsigned"] is None:
            if payout["status"] in (PayoutStatus.SENT.value, PayoutStatus.CONFIRMED.value):
                return payout_view(payout)  # posted again: it went out already
            raise Conflict(
                f"the payout is {payout['status']}; it takes no signed transaction", code="payout_state"
            )
        config, rail = await self._rail(merchant_pk, payout["rail"])
        try:
            prepared = await rail.submit_signed(config, payout["unsigned"], signed)
        except DestinationInvalid as exc:
            raise InvalidRequest(str(exc), param="signed_tx") from None
        except SendRefused as exc:
            raise InvalidRequest(f"the network refused the transaction: {exc}", param="signed_tx") from None
        except CounterpartUnavailable as exc:
            raise Conflict(
                f"the wallet cannot be reached, try again: {exc}", code="rail_unavailable"
            ) from None
        if await self._reference_taken(merchant_pk, prepared.reference, payout["pk"]):
            raise InvalidRequest(
                "this transaction was recorded for another payout: sign this payout's unsigned_tx",
                param="signed_tx",
            )
        if payout["received"] is not None:  # what the unsigned transaction pays, as built
            prepared = Prepared(
                prepared.reference, payout["received"], payout["network_fee"], "", prepared.final
            )
        return await self._after_sent(merchant_pk, payout_id, prepared)

    async def _reference_taken(self, merchant_pk: int, reference: str, payout_pk: int) -> bool:
        async with self.db.read() as conn:
            found = await conn.execute(
                select(payouts.c.pk).where(
                    payouts.c.merchant_pk == merchant_pk,
                    payouts.c.reference == reference,
                    payouts.c.pk != payout_pk,
                )
            )
            return found.first() is not None

    async def cancel(self, merchant_pk: int, payout_id: str) -> dict[str, Any]:
        """Only a payout waiting for its signature can be canceled: the rest may be on their way."""
        return await self._change(merchant_pk, payout_id, PayoutStatus.CANCELED)

    async def get(self, merchant_pk: int, payout_id: str) -> dict[str, Any]:
        return payout_view(await self._get(merchant_pk, payout_id))

    async def page(
        self, merchant_pk: int, limit: int, starting_after: str | None, status: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        scope = payouts.c.merchant_pk == merchant_pk
        query = select(payouts).where(scope)
        if status is not None:
            if status not in {s.value for s in PayoutStatus}:
                raise InvalidRequest(
                    f"unknown status {status[:40]!r}; statuses: {', '.join(s.value for s in PayoutStatus)}",
                    param="status",
                )
            query = query.where(payouts.c.status == status)
        async with self.db.read() as conn:
            rows, more = await newest_first(
                conn, payouts, query, scope, limit=limit, starting_after=starting_after, noun="payout"
            )
        return [payout_view(r) for r in rows], more

    # ----- sending -------------------------------------------------------------------------

    async def send(self, merchant_pk: int, payout_id: str) -> dict[str, Any]:
        """Send a `sending` payout's transaction, exactly once; an unreachable wallet leaves it
        `sending` for the worker to resume."""
        payout = await self._get(merchant_pk, payout_id)
        if payout["status"] != PayoutStatus.SENDING.value:
            return payout_view(payout)
        config, rail = await self._rail(merchant_pk, payout["rail"])
        out = Outbound(self.db, payouts, payout, PayoutStatus.SENDING.value, "payout")
        try:
            prepared = await send_once(rail, config, _request(payout), out, self.clock.now())
        except CounterpartUnavailable as exc:
            log.warning("payout %s: the wallet cannot be reached: %s", payout_id, exc)
            async with self.db.transaction() as tx:  # the next try waits RESUME_AFTER from now
                await tx.conn.execute(
                    update(payouts).where(payouts.c.pk == payout["pk"]).values(updated_at=self.clock.now())
                )
            return payout_view(payout)
        except (SendRefused, SendUnsupported) as exc:
            return await self._change(merchant_pk, payout_id, PayoutStatus.FAILED, failure=str(exc)[:500])
        return await self._after_sent(merchant_pk, payout_id, prepared)

    async def _after_sent(self, merchant_pk: int, payout_id: str, prepared: Prepared) -> dict[str, Any]:
        view = await self._change(merchant_pk, payout_id, PayoutStatus.SENT, sent=prepared)
        if prepared.final:
            view = await self._change(merchant_pk, payout_id, PayoutStatus.CONFIRMED)
        return view

    async def _build_unsigned(self, payout: dict[str, Any], config: RailConfig, rail: Rail) -> dict[str, Any]:
        try:
            built = await rail.prepare_unsigned(config, _request(payout))
        except (SendRefused, SendUnsupported, CounterpartUnavailable) as exc:
            failed = await self._change(
                payout["merchant_pk"], payout["id"], PayoutStatus.FAILED, failure=str(exc)[:500]
            )
            if isinstance(exc, CounterpartUnavailable):
                raise Conflict(
                    f"the wallet cannot be reached, nothing was paid out: {exc}", code="rail_unavailable"
                ) from None
            return failed
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                update(payouts)
                .where(payouts.c.pk == payout["pk"])
                .values(
                    unsigned=built.blob,
                    received=built.received,
                    network_fee=built.network_fee,
                    updated_at=self.clock.now(),
                )
            )
        return await self.get(payout["merchant_pk"], payout["id"])

    # ----- the worker's passes ------------------------------------------------------------

    async def run_due(self) -> int:
        """Payouts the merchants' policies make due now: `immediate` ones whenever a balance reaches
        the minimum, `daily` ones once a day from the merchant's hour on. Returns how many were made."""
        now = self.clock.now()
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(merchants.c.pk, merchants.c.withdrawal_policy, merchants.c.payout_hour).where(
                        merchants.c.withdrawal_policy.in_(
                            [WithdrawalPolicy.IMMEDIATE.value, WithdrawalPolicy.DAILY.value]
                        )
                    )
                )
            ).all()
        made = 0
        for row in rows:
            daily = row.withdrawal_policy == WithdrawalPolicy.DAILY.value
            period = daily_period(now, row.payout_hour) if daily else None
            if daily and period is None:
                continue
            origin = PayoutOrigin.DAILY if daily else PayoutOrigin.IMMEDIATE
            async with self.db.read() as conn:
                configs = await self.methods.configs(conn, row.pk)
            for config in configs:
                try:
                    made += await self._pay_by_policy(config, origin, period)
                except Exception:  # one merchant's trouble never stops the others' payouts
                    log.exception(
                        "payouts: the %s policy of merchant %s failed", origin.value, config.merchant_id
                    )
        return made

    async def _pay_by_policy(self, config: RailConfig, origin: PayoutOrigin, period: str | None) -> int:
        try:
            rail = get_rail(config.rail)
        except UnknownRail:
            return 0
        address = config.settings.get("payout_address")
        if not rail.spends(config) or not address:
            return 0
        currencies = await self._currencies(config, rail)
        if not currencies:
            return 0
        try:  # checked again before money moves: the wallet's network or rules may have changed
            address = await _destination(rail, config, None)
        except (InvalidRequest, Conflict) as exc:
            log.warning("payouts: merchant %s: %s: %s", config.merchant_id, config.rail, exc.message)
            return 0
        made = 0
        for currency in currencies:
            if await self._failed_lately(config, currency):
                continue  # e.g. a balance below the network fee: not again every pass
            payout = await self._reserve(config, rail, currency, None, address, origin, period, strict=False)
            if payout is not None:
                made += 1
                await self.send(config.merchant_pk, payout["id"])
        return made

    async def _failed_lately(self, config: RailConfig, currency: str) -> bool:
        """Whether a payout the policy made for this rail and currency failed within the last hour."""
        async with self.db.read() as conn:
            found = await conn.execute(
                select(payouts.c.pk).where(
                    payouts.c.merchant_pk == config.merchant_pk,
                    payouts.c.rail == config.rail,
                    payouts.c.currency == currency,
                    payouts.c.status == PayoutStatus.FAILED.value,
                    payouts.c.origin != PayoutOrigin.MANUAL.value,
                    payouts.c.updated_at > self.clock.now() - FAILED_PAUSE,
                )
            )
            return found.first() is not None

    async def resume(self, limit: int = 100) -> int:
        """Payouts left `sending` (a crash, an unreachable wallet): the wallet is asked first whether
        their transaction went out, so a resumed payout never pays twice."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(payouts.c.merchant_pk, payouts.c.id)
                    .where(
                        payouts.c.status == PayoutStatus.SENDING.value,
                        payouts.c.updated_at < self.clock.now() - RESUME_AFTER,
                    )
                    .order_by(payouts.c.updated_at)
                    .limit(limit)
                )
            ).all()
        moved = 0
        for row in rows:
            try:
                after = await self.send(row.merchant_pk, row.id)
            except Conflict:
                continue
            moved += after["status"] != PayoutStatus.SENDING.value
        return moved

    async def confirm_sent(self, limit: int = 100) -> int:
        """Sent payouts whose transaction is final become confirmed (and are posted paid out);
        those the network dropped fail (and give their amount back to the balance)."""
        moved = 0
        for row in await sent_rows(self.db, payouts, PayoutStatus.SENT.value, limit):
            state = await settled(self.methods, row.merchant_pk, row.rail, row.reference)
            if state == "confirmed":
                await self._change(row.merchant_pk, row.id, PayoutStatus.CONFIRMED)
            elif state == "failed":
                failure = "the network dropped the payout's transaction"
                await self._change(row.merchant_pk, row.id, PayoutStatus.FAILED, failure=failure)
            else:
                continue
            moved += 1
        return moved

    # ----- internals ----------------------------------------------------------------------

    async def _rail(self, merchant_pk: int, rail_name: str) -> tuple[RailConfig, Rail]:
        config = await self.methods.config(merchant_pk, rail_name, enabled_only=False)
        if config is None:
            raise NotFound(f"payment rail {rail_name[:40]!r} is not configured", param="rail")
        return config, get_rail(config.rail)

    async def _currencies(self, config: RailConfig, rail: Rail) -> list[str]:
        """The currencies this rail pays out in that have a positive balance."""
        named = {m.currency for m in rail.methods(config)}
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(ledger_balances.c.currency, ledger_balances.c.balance).where(
                    ledger_balances.c.merchant_pk == config.merchant_pk,
                    ledger_balances.c.test == rail.test,
                    ledger_balances.c.account == Account.BALANCE.value,
                )
            )
            return sorted(
                r.currency for r in rows if r.balance > 0 and (None in named or r.currency in named)
            )

    async def _reserve(
        self,
        config: RailConfig,
        rail: Rail,
        currency: str,
        amount: int | None,
        destination: str,
        origin: PayoutOrigin,
        period: str | None,
        *,
        unsigned: bool = False,
        strict: bool,
    ) -> dict[str, Any] | None:
        """Record the payout and set its amount aside, under a lock on the merchant so that two
        payouts cannot both take the same balance. `strict`: refuse with a clear error (a merchant's
        request); else quietly make none (a policy's pass, which tries again later)."""
        merchant_pk, now = config.merchant_pk, self.clock.now()
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                select(merchants.c.pk).where(merchants.c.pk == merchant_pk).with_for_update()
            )
            if period is not None and await _has_period(tx.conn, config, rail, currency, period):
                return None
            available = await _available(tx.conn, merchant_pk, currency, rail.test)
            take = available if amount is None else amount
            fee = operator_fee(take, self.fee_bps) if take > 0 else 0
            minimum = int(config.settings.get("payout_minimum") or 0)
            refusal = payout_refusal(take, available, minimum, fee)
            if refusal is not None:
                if not strict:
                    return None
                param, why = refusal
                raise InvalidRequest(why, param=param)
            status = PayoutStatus.AWAITING_SIGNATURE if unsigned else PayoutStatus.SENDING
            payout: dict[str, Any] = {
                "id": new_id("po"),
                "merchant_pk": merchant_pk,
                "rail": config.rail,
                "currency": currency,
                "amount": take,
                "fee": fee,
                "received": None,
                "network_fee": None,
                "destination": destination,
                "origin": origin.value,
                "period": period,
                "status": status.value,
                "reference": None,
                "prepared": None,
                "unsigned": None,
                "failure": None,
                "test": rail.test,
                "event_seq": 1,
                "created_at": now,
                "updated_at": now,
                "sent_at": None,
                "confirmed_at": None,
            }
            payout["pk"] = (
                await tx.conn.execute(payouts.insert().values(**payout).returning(payouts.c.pk))
            ).scalar_one()
            posting = payout_reserved(payout["id"], currency, take, fee)
            await ledger.post(tx, merchant_pk, posting, test=rail.test, now=now)
            await _announce(tx, payout, "payout.created")
        return payout

    async def _get(self, merchant_pk: int, payout_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(payouts).where(payouts.c.merchant_pk == merchant_pk, payouts.c.id == payout_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"no payout {payout_id[:40]!r}", param="id")
        return dict(row._mapping)

    async def _change(
        self,
        merchant_pk: int,
        payout_id: str,
        target: PayoutStatus,
        *,
        sent: Prepared | None = None,
        failure: str | None = None,
    ) -> dict[str, Any]:
        found = await self._get(merchant_pk, payout_id)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            payout = dict(
                (await tx.conn.execute(select(payouts).where(payouts.c.pk == found["pk"]).with_for_update()))
                .one()
                ._mapping
            )
            current = PayoutStatus(payout["status"])
            if current is target:
                return payout_view(payout)  # the same change again
            try:
                move(current, target)
            except PayoutTransitionError as exc:
                raise Conflict(str(exc), code="payout_state") from None
            changes: dict[str, Any] = {
                "status": target.value,
                "updated_at": now,
                "event_seq": payout["event_seq"] + 1,
            }
            in_flight = payout["amount"] - payout["fee"]
            if target is PayoutStatus.SENT:
                assert sent is not None
                changes.update(
                    reference=sent.reference,
                    received=sent.received,
                    network_fee=sent.network_fee,
                    prepared=None,
                    unsigned=None,
                    sent_at=now,
                )
            elif target is PayoutStatus.CONFIRMED:
                changes["confirmed_at"] = now
                posting = payout_paid(
                    payout["id"], payout["currency"], in_flight, payout["received"], payout["network_fee"]
                )
                await ledger.post(tx, merchant_pk, posting, test=payout["test"], now=now)
            else:
                changes.update(failure=failure, prepared=None, unsigned=None)
                posting = payout_released(payout["id"], payout["currency"], in_flight, payout["fee"])
                await ledger.post(tx, merchant_pk, posting, test=payout["test"], now=now)
            await tx.conn.execute(update(payouts).where(payouts.c.pk == payout["pk"]).values(**changes))
            payout.update(changes)
            await _announce(tx, payout, EVENTS[target])
            return payout_view(payout)


def _request(payout: dict[str, Any]) -> SendRequest:
    """What goes out: the payout's amount less the operator's fee (the network's comes out of it)."""
    return SendRequest(
        payout["id"], payout["destination"], payout["amount"] - payout["fee"], payout["currency"]
    )


async def _announce(tx: Tx, payout: dict[str, Any], event: str) -> None:
    await emit(
        tx,
        merchant_pk=payout["merchant_pk"],
        type=event,
        object_type="payout",
        object_id=payout["id"],
        order_id=None,
        sequence=payout["event_seq"],
        data=payout_view(payout),
        test=payout["test"],
        now=payout["updated_at"],
    )


async def _available(conn: AsyncConnection, merchant_pk: int, currency: str, test: bool) -> int:
    """The merchant's balance account in this currency (the kept balance: no sum over entries)."""
    found = (
        await conn.execute(
            select(ledger_balances.c.balance).where(
                ledger_balances.c.merchant_pk == merchant_pk,
                ledger_balances.c.test == test,
                ledger_balances.c.account == Account.BALANCE.value,
                ledger_balances.c.currency == currency,
            )
        )
    ).scalar()
    return int(found or 0)


async def _has_period(
    conn: AsyncConnection, config: RailConfig, rail: Rail, currency: str, period: str
) -> bool:
    found = await conn.execute(
        select(payouts.c.pk).where(
            payouts.c.merchant_pk == config.merchant_pk,
            payouts.c.rail == config.rail,
            payouts.c.currency == currency,
            payouts.c.test == rail.test,
            payouts.c.period == period,
        )
    )
    return found.first() is not None


def _currency(rail: Rail, config: RailConfig, currency: str | None) -> str:
    named = sorted({m.currency for m in rail.methods(config) if m.currency is not None})
    if currency is not None:
        currency = currency.upper()
        if named and currency not in named:
            raise InvalidRequest(
                f"the {config.rail} rail pays out in {', '.join(named)}, not {currency}", param="currency"
            )
        return currency
    if len(named) != 1:
        raise InvalidRequest(f"say which currency the {config.rail} rail pays out", param="currency")
    return named[0]


async def _destination(rail: Rail, config: RailConfig, destination: str | None) -> str:
    where = destination or config.settings.get("payout_address")
    if not where:
        raise InvalidRequest(
            f"no destination: give one, or set payout_address in the {config.rail} rail's settings",
            param="destination",
        )
    try:
        return await rail.check_destination(config, where)
    except DestinationInvalid as exc:
        raise InvalidRequest(str(exc), param="destination") from None
    except CounterpartUnavailable as exc:
        raise Conflict(
            f"the rail cannot check the destination right now: {exc}", code="rail_unavailable"
        ) from None
