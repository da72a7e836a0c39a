"""Email rendering, and sending through a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from scripts.procs import free_port

from kassa.notify.email import (
    TEST_MARKER,
    EmailKind,
    MailDeliveryError,
    OrderEmailContext,
    RecordingMailer,
    RefundLinkContext,
    SmtpMailer,
    WebhookDisabledContext,
    render_order_email,
    render_refund_link,
    render_webhook_disabled,
)

PAID_AT = datetime(2025, 3, 1, 14, 30, tzinfo=UTC)
ORDER = OrderEmailContext(
    order_id="ord_8Hq2",
    merchant_name="Tea & Co",
    amount_display="10.50 USD",
    description="Green tea, 250 g",
    checkout_url="https://pay.tea.example/checkout/ord_8Hq2",
    status="paid",
    test=False,
    paid_at=PAID_AT,
    merchant_order_id="A-1001",
    customer_email="alice@example.com",
    merchant_contact="help@tea.example",
)
DISABLED = WebhookDisabledContext(
    merchant_name="Tea & Co",
    endpoint_url="https://shop.tea.example/kassa/hook",
    reason="every delivery failed for 3 days",
    disabled_at=PAID_AT,
    endpoint_id="we_42",
    failed_attempts=10,
    last_error="HTTP 502",
    manage_url="https://pay.tea.example/dashboard/webhooks/we_42",
)


# --- rendering ---------------------------------------------------------------------------------


def test_order_created_links_to_the_payment_page() -> None:
    msg = render_order_email(
        EmailKind.CUSTOMER_ORDER_CREATED, replace(ORDER, status="open"), "alice@example.com"
    )

    assert msg.kind is EmailKind.CUSTOMER_ORDER_CREATED
    assert msg.subject == "Your order at Tea & Co: 10.50 USD to pay"
    for body in (msg.text, msg.html):
        assert ORDER.checkout_url in body
        assert "10.50 USD" in body
        assert "ord_8Hq2" in body
    assert f'href="{ORDER.checkout_url}"' in msg.html


def test_order_paid_is_a_receipt() -> None:
    msg = render_order_email(EmailKind.CUSTOMER_ORDER_PAID, ORDER, "alice@example.com")

    assert msg.subject == "Receipt from Tea & Co: 10.50 USD paid"
    for body in (msg.text, msg.html):
        for needle in (
            "10.50 USD",
            "Green tea, 250 g",
            "ord_8Hq2",
            "A-1001",
            "March 1, 2025, 2:30:00\u202fPM UTC",
        ):
            assert needle in body
    assert "receipt" in msg.text.lower()


def test_order_expired_without_payment() -> None:
    msg = render_order_email(
        EmailKind.CUSTOMER_ORDER_EXPIRED, replace(ORDER, status="expired"), "a@b.example"
    )

    assert msg.subject == "Your order at Tea & Co has expired"
    assert "nothing was charged" in msg.text
    assert "refund" not in msg.text


def test_order_expired_underpaid_explains_the_refund() -> None:
    ctx = replace(ORDER, status="expired", underpaid=True, amount_received_display="4.00 USD")
    msg = render_order_email(EmailKind.CUSTOMER_ORDER_EXPIRED, ctx, "alice@example.com")

    for body in (msg.text, msg.html):
        assert "4.00 USD" in body
        assert "Tea &" in body
        assert "will arrange a refund" in body
        assert "help@tea.example" in body
    assert "nothing was charged" not in msg.text


def test_merchant_order_paid() -> None:
    msg = render_order_email(EmailKind.MERCHANT_ORDER_PAID, ORDER, "owner@tea.example")

    assert msg.subject == "Order ord_8Hq2 paid: 10.50 USD"
    for needle in ("A-1001", "alice@example.com", "March 1, 2025, 2:30:00\u202fPM UTC", "Green tea"):
        assert needle in msg.text
        assert needle in msg.html


def test_webhook_disabled_says_which_why_and_how() -> None:
    msg = render_webhook_disabled(DISABLED, "owner@tea.example")

    assert msg.kind is EmailKind.MERCHANT_WEBHOOK_DISABLED
    assert msg.subject == "Webhook endpoint disabled: https://shop.tea.example/kassa/hook"
    for body in (msg.text, msg.html):
        for needle in (DISABLED.endpoint_url, "every delivery failed for 3 days", "HTTP 502", "re-enable"):
            assert needle.lower() in body.lower()
        assert DISABLED.manage_url is not None
        assert DISABLED.manage_url in body
    assert (
        "dashboard or through the API"
        in render_webhook_disabled(replace(DISABLED, manage_url=None), "owner@tea.example").text
    )


@pytest.mark.parametrize(
    "kind",
    [
        k
        for k in EmailKind
        if k not in (EmailKind.MERCHANT_WEBHOOK_DISABLED, EmailKind.CUSTOMER_REFUND_ADDRESS)
    ],
)
def test_test_orders_are_marked_everywhere(kind: EmailKind) -> None:
    test_msg = render_order_email(kind, replace(ORDER, test=True), "alice@example.com")
    live_msg = render_order_email(kind, ORDER, "alice@example.com")

    assert test_msg.subject.startswith(f"[{TEST_MARKER}] ")
    assert TEST_MARKER in test_msg.text
    assert TEST_MARKER in test_msg.html
    assert TEST_MARKER not in live_msg.subject + live_msg.text + live_msg.html


def test_html_is_escaped_text_is_not() -> None:
    ctx = replace(ORDER, merchant_name="<script>x</script>", description='"><img src=x onerror=alert(1)>')
    msg = render_order_email(EmailKind.CUSTOMER_ORDER_PAID, ctx, "alice@example.com")

    assert "<script>" not in msg.html
    assert "&lt;script&gt;" in msg.html
    assert "<img" not in msg.html
    assert '"><img src=x onerror=alert(1)>' in msg.text


def test_subject_stays_on_one_line() -> None:
    ctx = replace(ORDER, merchant_name="Tea\r\nBcc: victim@example.com")
    msg = render_order_email(EmailKind.CUSTOMER_ORDER_CREATED, ctx, "alice@example.com")
    assert "\n" not in msg.subject
    assert "\r" not in msg.subject


@pytest.mark.parametrize(
    "to", ["", "alice", "alice@example.com, bob@example.com", "Alice <alice@example.com>", "a@b\nBcc: c@d"]
)
def test_only_one_plain_recipient(to: str) -> None:
    with pytest.raises(ValueError, match="single plain email address"):
        render_order_email(EmailKind.CUSTOMER_ORDER_PAID, ORDER, to)


def test_webhook_disabled_is_not_an_order_email() -> None:
    with pytest.raises(ValueError, match="not an order email"):
        render_order_email(EmailKind.MERCHANT_WEBHOOK_DISABLED, ORDER, "owner@tea.example")


def test_naive_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_order_email(
            EmailKind.CUSTOMER_ORDER_PAID,
            replace(ORDER, paid_at=datetime(2025, 3, 1)),
            "alice@example.com",
        )


# --- recording mailer ---------------------------------------------------------------------------


async def test_recording_mailer_keeps_messages_and_logs_no_body(caplog: pytest.LogCaptureFixture) -> None:
    mailer = RecordingMailer()
    msg = render_order_email(EmailKind.CUSTOMER_ORDER_PAID, ORDER, "alice@example.com")
    with caplog.at_level(logging.INFO, logger="kassa.notify.email"):
        await mailer.send(msg)

    assert list(mailer.messages) == [msg]
    assert caplog.messages == [
        "email recorded (no SMTP configured): to=alice@example.com,"
        " subject=Receipt from Tea & Co: 10.50 USD paid"
    ]
    assert ORDER.checkout_url not in caplog.text


# --- SMTP ---------------------------------------------------------------------------------------


class Collector:
    """aiosmtpd handler: keeps every envelope; refuses recipients starting with "nobody"."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(e.content, policy=email.policy.default)  # type: ignore[misc]
            for e in self.envelopes
        ]


def start_smtp(handler: Collector, port: int, **kwargs: Any) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller


@pytest.fixture
def smtp() -> Iterator[tuple[Collector, int]]:
    handler, port = Collector(), free_port()
    controller = start_smtp(handler, port)
    yield handler, port
    controller.stop()


def mailer_for(port: int, **kwargs: Any) -> SmtpMailer:
    return SmtpMailer("127.0.0.1", port, sender="Tea & Co <orders@tea.example>", timeout=5, **kwargs)


async def test_message_arrives_with_both_parts(smtp: tuple[Collector, int]) -> None:
    handler, port = smtp
    spec = render_order_email(EmailKind.CUSTOMER_ORDER_PAID, ORDER, "alice@example.com")
    await mailer_for(port).send(spec)

    [envelope] = handler.envelopes
    assert envelope.mail_from == "orders@tea.example"
    assert envelope.rcpt_tos == ["alice@example.com"]
    [received] = handler.messages()
    assert received["Subject"] == spec.subject
    assert received["To"] == "alice@example.com"
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["Message-ID"].endswith("@tea.example>")
    assert received.get_content_type() == "multipart/alternative"
    plain = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert plain is not None
    assert html is not None
    for part in (plain.get_content(), html.get_content()):
        assert ORDER.checkout_url in part
        assert "10.50 USD" in part
        assert "ord_8Hq2" in part


async def test_non_ascii_content_survives(smtp: tuple[Collector, int]) -> None:
    handler, port = smtp
    ctx = replace(ORDER, merchant_name="Café Ünïcode", amount_display="1 000 ¥", test=True)
    spec = render_order_email(EmailKind.CUSTOMER_ORDER_CREATED, ctx, "alice@example.com")
    await mailer_for(port).send(spec)

    [received] = handler.messages()
    assert received["Subject"] == spec.subject
    plain = received.get_body(("plain",))
    assert plain is not None
    assert "Café Ünïcode" in plain.get_content()
    assert TEST_MARKER in plain.get_content()


async def test_server_down_then_up_again() -> None:
    handler, port = Collector(), free_port()
    spec = render_order_email(EmailKind.MERCHANT_ORDER_PAID, ORDER, "owner@tea.example")
    mailer = mailer_for(port)

    with pytest.raises(MailDeliveryError, match=f"127.0.0.1:{port}") as caught:
        await mailer.send(spec)
    assert not caught.value.permanent
    assert handler.envelopes == []

    controller = start_smtp(handler, port)
    try:
        await mailer.send(spec)
    finally:
        controller.stop()
    assert len(handler.envelopes) == 1


async def test_refused_recipient_is_permanent(smtp: tuple[Collector, int]) -> None:
    handler, port = smtp
    spec = render_order_email(EmailKind.CUSTOMER_ORDER_PAID, ORDER, "nobody@example.com")

    with pytest.raises(MailDeliveryError, match=r"nobody@example\.com") as caught:
        await mailer_for(port).send(spec)
    assert caught.value.permanent
    assert handler.envelopes == []


class Accounts:
    def __init__(self) -> None:
        self.logins: list[str] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"kassa", b"s3cret")
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


async def test_login() -> None:
    # AUTH over plain TCP is fine on loopback; auth_required stays off because aiosmtpd warns
    # (and our warnings-as-errors config would fail) when AUTH is required without TLS.
    handler, accounts, port = Collector(), Accounts(), free_port()
    controller = start_smtp(handler, port, authenticator=accounts, auth_require_tls=False)
    spec = render_order_email(EmailKind.MERCHANT_ORDER_PAID, ORDER, "owner@tea.example")
    try:
        await mailer_for(port, username="kassa", password="s3cret").send(spec)
        with pytest.raises(MailDeliveryError, match="SMTPAuthenticationError"):
            await mailer_for(port, username="kassa", password="wrong").send(spec)
    finally:
        controller.stop()

    assert accounts.logins == ["kassa"]
    assert len(handler.envelopes) == 1


def test_mailer_repr_hides_the_password() -> None:
    mailer = mailer_for(25, username="kassa", password="s3cret")
    assert "s3cret" not in repr(mailer)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"starttls": True, "use_tls": True}, "mutually exclusive"),
        ({"username": "kassa"}, "go together"),
    ],
)
def test_mailer_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mailer_for(25, **kwargs)


async def test_recording_mailer_is_bounded() -> None:
    mailer = RecordingMailer(keep=3)
    for i in range(5):
        await mailer.send(render_order_email(EmailKind.CUSTOMER_ORDER_PAID, ORDER, f"c{i}@example.com"))
    assert [m.to for m in mailer.messages] == ["c2@example.com", "c3@example.com", "c4@example.com"]


def test_the_refund_link_email_is_marked_and_escaped() -> None:
    context = RefundLinkContext(
        merchant_name="<b>Tea</b>",
        order_id="ord_1",
        amount_display="4.00 USD",
        link="https://pay.example/refund/abc.def",
        merchant_contact="help@tea.example",
        test=True,
    )
    msg = render_refund_link(context, "alice@example.com")
    assert msg.subject.startswith(f"[{TEST_MARKER}] ") and "4.00 USD" in msg.subject
    for body in (msg.text, msg.html):
        assert context.link in body and TEST_MARKER in body and "help@tea.example" in body
    assert "<b>Tea</b>" not in msg.html and "&lt;b&gt;Tea&lt;/b&gt;" in msg.html
    live = render_refund_link(replace(context, test=False), "alice@example.com")
    assert TEST_MARKER not in live.subject + live.text + live.html
