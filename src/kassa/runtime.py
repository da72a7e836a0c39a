"""Everything one Kassa process holds: settings, database, clock and the services built on them."""

from __future__ import annotations

from dataclasses import dataclass, field

from kassa.clock import Clock, SystemClock
from kassa.config import Settings
from kassa.crypto import SecretBox
from kassa.db.database import Database
from kassa.notify.email import Mailer, RecordingMailer, SmtpMailer
from kassa.services.api_keys import ApiKeyService
from kassa.services.changes import ChangeFeed, OrderChangeHub
from kassa.services.merchants import MerchantService
from kassa.services.orders import OrderService
from kassa.services.test_payments import TestPaymentService
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
    webhooks: WebhookService
    mailer: Mailer
    hub: OrderChangeHub = field(default_factory=OrderChangeHub)

    async def close(self) -> None:
        await self.db.dispose()


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    box = SecretBox(settings.resolved_secret_key())
    orders = OrderService(db, clock, settings.base_url)
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
        ),
        keys=ApiKeyService(db, clock, settings.admin_token),
        orders=orders,
        test_payments=TestPaymentService(db, orders),
        box=box,
        webhooks=WebhookService(db, clock, box, settings.allow_private_webhooks),
        mailer=build_mailer(settings),
    )
    db.on_commit.append(runtime.hub.publish)
    return runtime


def change_feed(runtime: Runtime) -> ChangeFeed:
    return ChangeFeed(runtime.db, runtime.hub)


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
