"""Merchants (tenants) and their payment-method switches."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import argon2
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from kassa.clock import Clock
from kassa.db.database import Database
from kassa.db.tables import merchants, payment_methods
from kassa.domain.orders import LatePaymentPolicy
from kassa.domain.withdrawals import WithdrawalPolicy, withdrawal_problem
from kassa.errors import AuthenticationFailed, InvalidRequest, KassaError, NotFound
from kassa.ids import new_id
from kassa.rails.registry import known_rails
from kassa.services.throttle import FailureThrottle
from kassa.services.ttl_cache import TTLCache
from kassa.services.views import iso

UPDATABLE = (
    "name",
    "email",
    "default_confirmations",
    "invoice_lifetime",
    "payment_tolerance_bps",
    "monitoring_window",
    "late_payment_policy",
    "callback_url",
    "notify_paid_email",
    "quote_at",
    "withdrawal_policy",
    "withdrawal_url",
    "refund_policy",
    "payout_hour",
)


@dataclass(frozen=True, slots=True)
class Merchant:
    pk: int
    id: str
    name: str
    email: str | None
    default_confirmations: int
    invoice_lifetime: int
    payment_tolerance_bps: int
    monitoring_window: int
    late_payment_policy: LatePaymentPolicy
    callback_url: str | None
    notify_paid_email: bool
    quote_at: str  # "creation": quotes hold until their deadline; "method_choice": re-quoted on choice
    has_password: bool  # for HTTP Basic on the KnockturnAllee front
    withdrawal_policy: WithdrawalPolicy
    withdrawal_url: str | None
    refund_policy: str  # "approve": refunds due by rule wait for the merchant; "automatic": sent
    payout_hour: int  # the UTC hour of daily payouts
    created_at: datetime
    rails: dict[str, bool]  # rail name -> enabled

    def notice_fields(self) -> dict[str, Any]:
        """What the outbox needs to address notices (see services/events.py)."""
        return {
            "name": self.name,
            "email": self.email,
            "callback_url": self.callback_url,
            "notify_paid_email": self.notify_paid_email,
        }

    @property
    def enabled_rails(self) -> list[str]:
        return sorted(name for name, on in self.rails.items() if on)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "merchant",
            "name": self.name,
            "email": self.email,
            "default_confirmations": self.default_confirmations,
            "invoice_lifetime": self.invoice_lifetime,
            "payment_tolerance_bps": self.payment_tolerance_bps,
            "monitoring_window": self.monitoring_window,
            "late_payment_policy": self.late_payment_policy.value,
            "callback_url": self.callback_url,
            "notify_paid_email": self.notify_paid_email,
            "quote_at": self.quote_at,
            "has_password": self.has_password,
            "withdrawal_policy": self.withdrawal_policy.value,
            "withdrawal_url": self.withdrawal_url,
            "refund_policy": self.refund_policy,
            "payout_hour": self.payout_hour,
            "rails": [{"rail": name, "enabled": on} for name, on in sorted(self.rails.items())],
            "created_at": iso(self.created_at),
        }


class MerchantService:
    def __init__(
        self, db: Database, clock: Clock, defaults: dict[str, int], cache: TTLCache[Any] | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.defaults = defaults
        self.cache = cache or TTLCache(0)  # the order service's cache of merchant settings
        self.throttle = FailureThrottle(time.monotonic)

    async def create(self, name: str, **settings: Any) -> Merchant:
        settings = {k: v for k, v in settings.items() if v is not None}
        _check_settings(settings)
        now = self.clock.now()
        values: dict[str, Any] = {
            "id": new_id("mch"),
            "name": name,
            "email": None,
            "default_confirmations": self.defaults["default_confirmations"],
            "invoice_lifetime": self.defaults["default_invoice_lifetime"],
            "payment_tolerance_bps": 0,
            "monitoring_window": self.defaults["default_monitoring_window"],
            "late_payment_policy": LatePaymentPolicy.ACCEPT.value,
            "callback_url": None,
            "notify_paid_email": False,
            "quote_at": "creation",
            "withdrawal_policy": WithdrawalPolicy.MANUAL.value,
            "refund_policy": "approve",
            "withdrawal_url": None,
            "payout_hour": 0,
            "created_at": now,
            "updated_at": now,
        }
        password = settings.pop("password", None)
        values.update({k: v for k, v in settings.items() if v is not None})
        _check_withdrawal(values)
        if password is not None:
            values["password_hash"] = await hash_password(password)
        async with self.db.transaction() as tx:
            pk = (
                await tx.conn.execute(insert(merchants).values(**values).returning(merchants.c.pk))
            ).scalar_one()
            # Every new merchant starts with the test rail on, like a gateway's test mode.
            await tx.conn.execute(
                insert(payment_methods).values(
                    merchant_pk=pk, rail="test", enabled=True, settings={}, created_at=now, updated_at=now
                )
            )
            return await load_merchant(tx.conn, pk=pk)

    async def get(self, merchant_id: str) -> Merchant:
        async with self.db.read() as conn:
            return await load_merchant(conn, id=merchant_id)

    async def all(self) -> list[Merchant]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(merchants.c.pk).order_by(merchants.c.pk))).all()
            return [await load_merchant(conn, pk=r.pk) for r in rows]

    async def update(
        self, merchant_id: str, settings: dict[str, Any], rails: dict[str, bool] | None = None
    ) -> Merchant:
        _check_settings(settings)
        now = self.clock.now()
        values = {k: v for k, v in settings.items() if k in UPDATABLE}
        if "password" in settings:  # None clears it
            password = settings["password"]
            values["password_hash"] = await hash_password(password) if password is not None else None
        async with self.db.transaction() as tx:
            merchant = await load_merchant(tx.conn, id=merchant_id)
            _check_withdrawal(
                {
                    "withdrawal_policy": merchant.withdrawal_policy.value,
                    "withdrawal_url": merchant.withdrawal_url,
                    **values,
                },
                await _has_payout_address(tx.conn, merchant.pk),
            )
            if values:
                await tx.conn.execute(
                    update(merchants).where(merchants.c.pk == merchant.pk).values(updated_at=now, **values)
                )
            for rail, enabled in (rails or {}).items():
                await set_rail_enabled(tx.conn, merchant, rail, enabled, now)
            updated = await load_merchant(tx.conn, pk=merchant.pk)
        self.cache.invalidate(merchant.pk)
        return updated

    async def check_password(self, merchant_id: str, password: str) -> Merchant:
        """The merchant, if `password` is its password (HTTP Basic on the KnockturnAllee front).
        Failures are counted per merchant: too many within minutes are refused for a while (429)."""
        wait = self.throttle.retry_after(merchant_id)
        if wait is not None:
            raise TooManyAttempts(
                f"too many failed sign-ins for this merchant; try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(merchants.c.pk, merchants.c.password_hash).where(merchants.c.id == merchant_id)
                )
            ).first()
        stored = row.password_hash if row is not None else None
        if not await verify_password(stored, password):
            self.throttle.failed(merchant_id)
            raise AuthenticationFailed(
                "wrong merchant id or password", code="invalid_credentials", headers=BASIC_CHALLENGE
            )
        self.throttle.succeeded(merchant_id)
        return await self.get(merchant_id)


BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="kassa", charset="UTF-8"'}
_hasher = argon2.PasswordHasher()
_DUMMY_HASH = _hasher.hash("kassa: no password is set for this merchant")


class TooManyAttempts(KassaError):
    status = 429
    type = "rate_limit_error"
    code = "too_many_attempts"


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not a hash is stored (no timing hint that a merchant has one);
    argon2 runs off the event loop."""

    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    return await asyncio.to_thread(check)


async def set_rail_enabled(
    conn: AsyncConnection, merchant: Merchant, rail: str, enabled: bool, now: datetime
) -> None:
    if rail not in known_rails():
        raise InvalidRequest(
            f"unknown payment rail {rail!r}; known: {', '.join(known_rails())}", param="rails"
        )
    if rail in merchant.rails:
        await conn.execute(
            update(payment_methods)
            .where(payment_methods.c.merchant_pk == merchant.pk, payment_methods.c.rail == rail)
            .values(enabled=enabled, updated_at=now)
        )
    elif rail == "test":
        await conn.execute(
            insert(payment_methods).values(
                merchant_pk=merchant.pk,
                rail=rail,
                enabled=enabled,
                settings={},
                created_at=now,
                updated_at=now,
            )
        )
    elif enabled:
        raise InvalidRequest(f"rail {rail!r} must be configured before it can be enabled", param="rails")


REQUIRED = frozenset(UPDATABLE) - {"email", "callback_url", "withdrawal_url"}  # the rest cannot be cleared


def _check_settings(settings: dict[str, Any]) -> None:
    for name in sorted(REQUIRED & settings.keys()):
        if settings[name] is None:
            raise InvalidRequest(f"{name} cannot be null", param=name)
    policy = settings.get("late_payment_policy")
    if policy is not None and policy not in {p.value for p in LatePaymentPolicy}:
        raise InvalidRequest("late_payment_policy must be 'accept' or 'refund'", param="late_payment_policy")
    if settings.get("refund_policy") not in (None, "approve", "automatic"):
        raise InvalidRequest("refund_policy must be 'approve' or 'automatic'", param="refund_policy")
    policy = settings.get("withdrawal_policy")
    if policy is not None and policy not in {p.value for p in WithdrawalPolicy}:
        raise InvalidRequest(
            "withdrawal_policy must be 'immediate', 'daily' or 'manual'", param="withdrawal_policy"
        )


def _check_withdrawal(values: dict[str, Any], payout_address: bool = False) -> None:
    policy = WithdrawalPolicy(values["withdrawal_policy"])
    problem = withdrawal_problem(policy, values.get("withdrawal_url"), payout_address)
    if problem is not None:
        raise InvalidRequest(problem[1], param=problem[0])


async def load_merchant(conn: AsyncConnection, *, pk: int | None = None, id: str | None = None) -> Merchant:
    query = select(merchants)
    query = query.where(merchants.c.pk == pk) if pk is not None else query.where(merchants.c.id == id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no merchant {id!r}", param="id")
    rails = await conn.execute(
        select(payment_methods.c.rail, payment_methods.c.enabled).where(
            payment_methods.c.merchant_pk == row.pk
        )
    )
    return _merchant(row, {r.rail: r.enabled for r in rails})


def _merchant(row: Row[Any], rails: dict[str, bool]) -> Merchant:
    return Merchant(
        pk=row.pk,
        id=row.id,
        name=row.name,
        email=row.email,
        default_confirmations=row.default_confirmations,
        invoice_lifetime=row.invoice_lifetime,
        payment_tolerance_bps=row.payment_tolerance_bps,
        monitoring_window=row.monitoring_window,
        late_payment_policy=LatePaymentPolicy(row.late_payment_policy),
        callback_url=row.callback_url,
        notify_paid_email=row.notify_paid_email,
        quote_at=row.quote_at,
        has_password=row.password_hash is not None,
        withdrawal_policy=WithdrawalPolicy(row.withdrawal_policy),
        withdrawal_url=row.withdrawal_url,
        refund_policy=row.refund_policy,
        payout_hour=row.payout_hour,
        created_at=row.created_at,
        rails=rails,
    )


async def _has_payout_address(conn: AsyncConnection, merchant_pk: int) -> bool:
    """Whether one of the merchant's rails names a payout address (automatic payouts can go there)."""
    rows = await conn.execute(
        select(payment_methods.c.settings).where(payment_methods.c.merchant_pk == merchant_pk)
    )
    return any((r.settings or {}).get("payout_address") for r in rows)
