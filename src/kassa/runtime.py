"""Everything one Kassa process holds: settings, database, clock and the services built on them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from kassa.clock import Clock, SystemClock
from kassa.config import Settings
from kassa.crypto import SecretBox
from kassa.db.database import Database
from kassa.errors import NotFound
from kassa.notify.email import Mailer, RecordingMailer, SmtpMailer
from kassa.rails.base import Keychain, RailHealth, keychain_of
from kassa.rails.registry import get_rail
from kassa.rates import RateCache, build_rate_source
from kassa.services.api_keys import ApiKeyService
from kassa.services.changes import ChangeFeed, OrderChangeHub
from kassa.services.gateways import GatewayService
from kassa.services.ledger import LedgerService
from kassa.services.merchants import MerchantService
from kassa.services.orders import OrderService
from kassa.services.payment_methods import PaymentMethodService
from kassa.services.payouts import PayoutService
from kassa.services.quotes import Quoter
from kassa.services.refund_links import RefundLinks
from kassa.services.refunds import RefundService
from kassa.services.sessions import SessionService
from kassa.services.submissions import SubmissionService
from kassa.services.test_payments import TestPaymentService
from kassa.services.ttl_cache import TTLCache
from kassa.services.users import UserService
from kassa.services.webhooks import WebhookService


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock
    merchants: MerchantService
    keys: ApiKeyService
    orders: OrderService
    test_payments: TestPaymentService
    box: SecretBox
    payment_methods: PaymentMethodService
    webhooks: WebhookService
    mailer: Mailer
    submissions: SubmissionService
    gateways: GatewayService
    ledger: LedgerService
    refunds: RefundService
    payouts: PayoutService
    sessions: SessionService
    users: UserService
    hub: OrderChangeHub = field(default_factory=OrderChangeHub)
    watcher_events: dict[tuple[int, str], asyncio.Event] = field(default_factory=dict)
    watcher_health: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def rail_check(self, merchant_pk: int, rail: str) -> RailHealth:
        async with self.db.read() as conn:
            configs = {
                c.rail: c for c in await self.payment_methods.configs(conn, merchant_pk, enabled_only=False)
            }
        if rail not in configs:
            raise NotFound(f"payment rail {rail!r} is not configured", param="rail")
        try:
            health = await get_rail(rail).check(configs[rail])
            keychain = keychain_of(get_rail(rail), configs[rail])
            if keychain is not None:
                await self._check_addresses(health, keychain, merchant_pk)
            return health
        except Exception as exc:  # a check reports trouble; it never fails the request
            return RailHealth(ok=False, details={"error": f"{type(exc).__name__}: {exc}"})

    async def _check_addresses(self, health: RailHealth, keychain: Keychain, merchant_pk: int) -> None:
        """A deriving rail's check also says how far Kassa went along the key: past the merchant's
        wallet's gap limit, that wallet no longer sees the payments; and whether the node watches
        every address handed out (the watcher imports them)."""
        usage = await self.orders.addresses.usage(keychain.key_id, merchant_pk)
        health.details["addresses"] = {
            "next_index": usage.next_index,
            "last_paid_index": usage.last_paid_index,
            "gap": usage.gap,
            "gap_limit": keychain.gap_limit,
            "recycled": usage.recycled,
        }
        problems = []
        if keychain.gap_limit is not None and usage.gap > keychain.gap_limit:
            problems.append(
                f"Kassa handed out {usage.gap} addresses after the last paid one, more than the gap "
                f"limit of {keychain.gap_limit}: raise your wallet's gap limit to at least {usage.gap} "
                "(or set gap_limit to what your wallet uses), or it will not show later payments"
            )
        if usage.next_index:
            try:
                covered: bool | None = await keychain.covers(usage.next_index - 1)
            except Exception as exc:  # the rail's own check says why the node cannot answer
                covered, health.details["addresses"]["covered_error"] = None, f"{type(exc).__name__}: {exc}"
            health.details["addresses"]["covered"] = covered
            if covered is False:
                problems.append(
                    f"the node does not watch address #{usage.next_index - 1} yet (the watcher "
                    "imports the addresses handed out: is it running?)"
                )
        if problems:
            health.ok = False
            reasons = [health.details["reason"]] if "reason" in health.details else []
            health.details["reason"] = "; ".join([*reasons, *problems])

    async def wake_watcher(self, merchant_pk: int, rail: str) -> None:
        """Wake this process's watcher now, and (PostgreSQL) the one in whichever process leads it."""
        self.wake_local(merchant_pk, rail)
        if self.db.is_postgres:
            async with self.db.transaction() as tx:
                await tx.conn.execute(
                    text("SELECT pg_notify('kassa_rails', :p)"), {"p": f"{merchant_pk}:{rail}"}
                )

    def wake_local(self, merchant_pk: int, rail: str) -> None:
        event = self.watcher_events.get((merchant_pk, rail))
        if event is not None:
            event.set()

    async def close(self) -> None:
        await self.db.dispose()


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    secret_key = settings.resolved_secret_key()  # read (or made) once
    box = SecretBox(secret_key, settings.old_secret_keys)
    merchant_cache: TTLCache[Any] = TTLCache(settings.cache_seconds)
    methods = PaymentMethodService(db, clock, box, merchant_cache)
    rates = RateCache(
        build_rate_source(settings.rates, None, clock), clock, timedelta(seconds=settings.rate_max_age)
    )
    links = RefundLinks(
        secret_key,
        settings.base_url,
        timedelta(days=settings.refund_link_days),
        clock,
        old_secrets=settings.old_secret_keys,
    )
    orders = OrderService(
        db,
        clock,
        settings.base_url,
        methods,
        Quoter(rates, timedelta(seconds=settings.quote_lifetime)),
        merchant_cache,
        links,
    )
    runtime = Runtime(
        settings=settings,
        db=db,
        clock=clock,
        merchants=MerchantService(
            db,
            clock,
            {
                "default_confirmations": settings.default_confirmations,
                "default_invoice_lifetime": settings.default_invoice_lifetime,
                "default_monitoring_window": settings.default_monitoring_window,
            },
            merchant_cache,
        ),
        keys=ApiKeyService(db, clock, settings.admin_token, settings.cache_seconds),
        orders=orders,
        test_payments=TestPaymentService(db, orders),
        box=box,
        payment_methods=methods,
        webhooks=WebhookService(db, clock, box, settings.allow_private_webhooks),
        mailer=build_mailer(settings),
        submissions=SubmissionService(db, clock, orders, methods),
        gateways=GatewayService(db, orders, methods),
        ledger=LedgerService(db),
        refunds=RefundService(db, clock, orders, methods, links),
        payouts=PayoutService(db, clock, methods, settings.payout_fee_bps),
        sessions=SessionService(db, orders, clock),
        users=UserService(db, clock, box, settings.dashboard_session_hours, settings.cache_seconds),
    )
    db.on_commit.append(runtime.hub.publish)
    return runtime


def change_feed(runtime: Runtime) -> ChangeFeed:
    return ChangeFeed(runtime.db, runtime.hub, on_rail_notice=runtime.wake_local)


def build_mailer(settings: Settings) -> Mailer:
    if not settings.smtp_host:
        return RecordingMailer()
    return SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        starttls=settings.smtp_starttls and not settings.smtp_tls,
        use_tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=settings.smtp_password,
        sender=settings.mail_from,
    )
