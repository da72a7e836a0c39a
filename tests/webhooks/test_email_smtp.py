"""Customer email through a real SMTP server (aiosmtpd on loopback), and through an SMTP outage.

The email outbox is sent by `EmailWorker` with an `SmtpMailer`, run one pass at a time on the test
server's loop; time moves with the server's fake clock.
"""

from __future__ import annotations

import email
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from kassa.db.tables import emails
from kassa.notify.email import SmtpMailer
from kassa.worker.emails import EmailWorker
from tests.support.server import KassaServer, free_port

SENDER = "Kassa Test <kassa@shop.example>"
TEST_MARKER = "[TEST — no real money]"


class Inbox:
    """The aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for _, rcpt, m in self.messages if address in rcpt]


class Smtp:
    """A real SMTP server on a fixed loopback port that can go down and come back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def up(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp()
    server.up()
    try:
        yield server
    finally:
        server.down()


@pytest.fixture
def mail_worker(kassa: KassaServer, smtp: Smtp) -> EmailWorker:
    return EmailWorker(kassa.runtime, SmtpMailer("127.0.0.1", smtp.port, sender=SENDER, timeout=5))


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def rows_for(kassa: KassaServer, recipient: str) -> list[dict[str, Any]]:
    async def load() -> list[dict[str, Any]]:
        async with kassa.runtime.db.read() as conn:
            rows = await conn.execute(
                select(emails).where(emails.c.recipient == recipient).order_by(emails.c.pk)
            )
            return [dict(r._mapping) for r in rows]

    return kassa.call(load())


def shop(kassa: KassaServer, **settings: Any) -> httpx.Client:
    _, key = kassa.new_merchant("Mail Shop", **settings)
    return httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@customer.example"


def test_customer_emails_arrive_with_links_and_amounts(
    kassa: KassaServer, smtp: Smtp, mail_worker: EmailWorker
) -> None:
    buyer, owner = address("buyer"), address("owner")
    with shop(kassa, email=owner, notify_paid_email=True) as api:
        order = api.post(
            "/api/v1/orders",
            json={
                "amount": 1050,
                "currency": "USD",
                "email": buyer,
                "description": "Blue mug",
                "confirmations": 0,
            },
        ).json()
        kassa.call(mail_worker.run_once())
        created = smtp.inbox.to(buyer)
        assert len(created) == 1
        msg = created[0]
        assert msg["Subject"] == f"{TEST_MARKER} Your order at Mail Shop: $10.50 to pay"
        assert msg["To"] == buyer and msg["From"] == SENDER
        assert msg["X-Kassa-Email"] == "customer_order_created"
        for body in (text_of(msg), html_of(msg)):
            assert order["checkout_url"] in body
            assert "$10.50" in body and order["id"] in body and "Blue mug" in body
            assert "TEST — no real money" in body
        assert f'href="{order["checkout_url"]}"' in html_of(msg)

        paid = api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 1050}).json()
        assert paid["order"]["status"] == "paid"
        kassa.call(mail_worker.run_once())
        receipt = smtp.inbox.to(buyer)[1]
        assert receipt["Subject"] == f"{TEST_MARKER} Receipt from Mail Shop: $10.50 paid"
        assert receipt["X-Kassa-Email"] == "customer_order_paid"
        assert "Amount paid: $10.50" in text_of(receipt)
        assert order["checkout_url"] in text_of(receipt) and order["checkout_url"] in html_of(receipt)
        notice = smtp.inbox.to(owner)
        assert len(notice) == 1 and notice[0]["X-Kassa-Email"] == "merchant_order_paid"
        assert "$10.50" in text_of(notice[0]) and order["id"] in text_of(notice[0])

        # Underpaid, then the time runs out: the customer learns what was received and that a
        # refund will be arranged.
        short = api.post(
            "/api/v1/orders",
            json={"amount": 2000, "currency": "USD", "email": buyer, "expires_in": 60, "confirmations": 0},
        ).json()
        after = api.post("/api/v1/test/payments", json={"order": short["id"], "amount": 500}).json()
        assert after["order"]["status"] == "open"
        kassa.clock.advance(61)
        kassa.tick()
        state = api.get(f"/api/v1/orders/{short['id']}").json()
        assert (state["status"], state["exception"]) == ("expired", "underpaid")
        kassa.call(mail_worker.run_once())

    mine = smtp.inbox.to(buyer)
    kinds = [m["X-Kassa-Email"] for m in mine]
    assert kinds == [
        "customer_order_created",
        "customer_order_paid",
        "customer_order_created",
        "customer_order_expired",
        "customer_refund_address",  # the $5.00 refund waits for the buyer's address: the link
    ]
    expired = mine[-2]
    (refund,) = api_refunds(kassa, short["id"])
    link_mail = mine[-1]
    assert "$5.00" in link_mail["Subject"] and "where should it go" in link_mail["Subject"]
    base, token = refund["destination_url"].rsplit("/", 1)
    signed_part = f"{base}/{token.split('.')[0]}."  # the link's time part may differ
    assert signed_part in text_of(link_mail) and signed_part in html_of(link_mail)
    assert expired["Subject"] == f"{TEST_MARKER} Your order at Mail Shop has expired"
    text = text_of(expired)
    assert "We received $5.00, which is less than the $20.00 due" in text
    assert "refund" in text and owner in text
    assert short["checkout_url"] in text and short["checkout_url"] in html_of(expired)
    # Every email is in the outbox as sent, once.
    rows = rows_for(kassa, buyer)
    assert [(r["kind"], r["status"], r["attempts"]) for r in rows] == [(k, "sent", 1) for k in kinds]


def test_smtp_down_then_up_mail_arrives_once(
    kassa: KassaServer, smtp: Smtp, mail_worker: EmailWorker
) -> None:
    buyer = address("patient")
    smtp.down()
    with shop(kassa) as api:
        order = api.post(
            "/api/v1/orders", json={"amount": 700, "currency": "EUR", "email": buyer, "confirmations": 0}
        ).json()
    kassa.call(mail_worker.run_once())
    [row] = rows_for(kassa, buyer)
    assert row["status"] == "pending" and row["attempts"] == 1
    assert "ConnectionRefused" in row["last_error"] or "connect" in row["last_error"].lower()
    assert f"127.0.0.1:{smtp.port}" in row["last_error"]
    wait = row["next_attempt_at"] - kassa.clock.now()
    assert timedelta(seconds=3) < wait <= timedelta(seconds=5.5)  # the first retry: 5 s ± 10 %

    smtp.up()
    kassa.call(mail_worker.run_once())  # not due yet
    assert smtp.inbox.to(buyer) == []
    kassa.clock.advance(wait.total_seconds() + 1)
    kassa.call(mail_worker.run_once())
    kassa.call(mail_worker.run_once())  # nothing left to send twice
    got = smtp.inbox.to(buyer)
    assert len(got) == 1 and order["checkout_url"] in text_of(got[0])
    assert "€7.00" in got[0]["Subject"]
    [row] = rows_for(kassa, buyer)
    assert (row["status"], row["attempts"]) == ("sent", 2) and row["sent_at"] is not None


def test_slow_smtp_and_two_workers_send_each_email_once(kassa: KassaServer) -> None:
    first, second = address("first"), address("second")
    sent: list[str] = []

    class Mailer:
        def __init__(self, slow: bool) -> None:
            self.slow = slow

        async def send(self, msg: Any) -> None:
            sent.append(msg.to)
            if self.slow and msg.to == first:
                kassa.clock.advance(121)  # this one send outlasted the lease ...
                await other.run_once()  # ... and meanwhile the second worker process polled

    one = EmailWorker(kassa.runtime, Mailer(slow=True))
    other = EmailWorker(kassa.runtime, Mailer(slow=False))
    with shop(kassa) as api:
        for to in (first, second):
            api.post("/api/v1/orders", json={"amount": 700, "currency": "EUR", "email": to})
    kassa.call(one.run_once())
    assert sent.count(second) == 1, sent


def api_refunds(kassa: KassaServer, order_id: str) -> list[dict[str, Any]]:
    """The order's refunds as the API shows them (with the customer's link)."""
    row = kassa.call(kassa.runtime.orders.get_public(order_id))
    merchant_pk = row[1].pk
    refunds, _more = kassa.call(kassa.runtime.refunds.for_order(merchant_pk, order_id, 10, None))
    return refunds
