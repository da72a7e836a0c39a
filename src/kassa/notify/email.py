"""Transactional email: rendering from Jinja2 templates, and sending over SMTP.

Each email kind has ``templates/email/<kind>.txt`` (defining a ``subject`` block and the text
body) and ``<kind>.html`` (autoescaped). Test orders get "TEST — no real money" in the subject
and at the top of both bodies.

Customer emails are written in the context's ``language`` (the order's locale, chosen by the caller
with :func:`kassa.i18n.negotiate`, which also formatted the amounts); merchant emails are English.
Times are formatted here, in that language.

:class:`SmtpMailer` raises :class:`MailDeliveryError` on any failure so that the caller's outbox
can retry; ``permanent`` is set when the server refused the recipient or the message for good.
:class:`RecordingMailer` stands in when no SMTP server is configured.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from enum import StrEnum
from functools import cache
from typing import Any, Protocol

import aiosmtplib
import jinja2

from kassa.i18n import ENGLISH, N_, SOURCE, Language, install, language

__all__ = [
    "TEST_MARKER",
    "EmailKind",
    "EmailMessageSpec",
    "MailDeliveryError",
    "Mailer",
    "OrderEmailContext",
    "RecordingMailer",
    "SmtpMailer",
    "WebhookDisabledContext",
    "build_email_message",
    "render_order_email",
    "render_webhook_disabled",
]

log = logging.getLogger(__name__)

TEST_MARKER = N_("TEST — no real money")


class EmailKind(StrEnum):
    CUSTOMER_ORDER_CREATED = "customer_order_created"
    CUSTOMER_ORDER_PAID = "customer_order_paid"
    CUSTOMER_ORDER_EXPIRED = "customer_order_expired"
    CUSTOMER_REFUND_ADDRESS = "customer_refund_address"
    MERCHANT_ORDER_PAID = "merchant_order_paid"
    MERCHANT_WEBHOOK_DISABLED = "merchant_webhook_disabled"


_ORDER_KINDS = frozenset(EmailKind) - {EmailKind.MERCHANT_WEBHOOK_DISABLED, EmailKind.CUSTOMER_REFUND_ADDRESS}
_MERCHANT_KINDS = frozenset({EmailKind.MERCHANT_ORDER_PAID, EmailKind.MERCHANT_WEBHOOK_DISABLED})
_ADDRESS_RE = re.compile(r"[^@\s,;:<>()\[\]\\\"]+@[^@\s,;:<>()\[\]\\\"]+")


@dataclass(frozen=True, slots=True)
class EmailMessageSpec:
    """A rendered email, ready for a :class:`Mailer`. ``to`` is one bare address."""

    to: str
    subject: str
    text: str
    html: str
    kind: EmailKind

    def __post_init__(self) -> None:
        if not _ADDRESS_RE.fullmatch(self.to):
            raise ValueError("'to' must be a single plain email address")
        if "\r" in self.subject or "\n" in self.subject:
            raise ValueError("subject must be one line")


@dataclass(frozen=True, slots=True)
class OrderEmailContext:
    """Everything the order emails show. Amounts arrive formatted in ``language`` (e.g. "$10.50"),
    a code of kassa.i18n.LANGUAGES; merchant emails are English whatever it says."""

    order_id: str
    merchant_name: str
    amount_display: str
    description: str | None
    checkout_url: str
    status: str
    test: bool
    paid_at: datetime | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    merchant_order_id: str | None = None
    customer_email: str | None = None
    underpaid: bool = False
    amount_received_display: str | None = None
    merchant_contact: str | None = None
    dashboard_url: str | None = None
    language: str = SOURCE


@dataclass(frozen=True, slots=True)
class WebhookDisabledContext:
    """Why an endpoint was switched off, for the merchant's email."""

    merchant_name: str
    endpoint_url: str
    reason: str
    disabled_at: datetime
    endpoint_id: str | None = None
    failed_attempts: int | None = None
    last_error: str | None = None
    manage_url: str | None = None
    test: bool = False


@dataclass(frozen=True, slots=True)
class RefundLinkContext:
    """A refund waits for the customer's address: the signed link to give it."""

    merchant_name: str
    order_id: str
    amount_display: str
    link: str
    merchant_contact: str | None = None
    test: bool = False
    language: str = SOURCE


@cache
def _environment(code: str) -> jinja2.Environment:
    """The email templates in one language; the `datetime` filter writes a time in it."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kassa.notify", "templates/email"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    lang = language(code)
    env.filters["datetime"] = lang.datetime
    return install(env, lang)


def _render(kind: EmailKind, to: str, data: dict[str, Any], test: bool) -> EmailMessageSpec:
    lang: Language = ENGLISH if kind in _MERCHANT_KINDS else language(data.get("language") or SOURCE)
    env = _environment(lang.code)
    text_template = env.get_template(f"{kind.value}.txt")
    context = text_template.new_context(data)
    subject = " ".join("".join(text_template.blocks["subject"](context)).split())
    marker = lang.gettext(TEST_MARKER)
    if test:
        subject = f"[{marker}] {subject}"
    data = {**data, "subject": subject, "test_marker": marker}
    return EmailMessageSpec(
        to=to,
        subject=subject,
        text=text_template.render(data),
        html=env.get_template(f"{kind.value}.html").render(data),
        kind=kind,
    )


def _fields(ctx: OrderEmailContext | WebhookDisabledContext | RefundLinkContext) -> dict[str, Any]:
    return {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx)}


def render_order_email(kind: EmailKind, ctx: OrderEmailContext, to: str) -> EmailMessageSpec:
    """Render one of the order emails (every kind but ``MERCHANT_WEBHOOK_DISABLED``)."""
    if kind not in _ORDER_KINDS:
        raise ValueError(f"{kind} is not an order email")
    return _render(kind, to, _fields(ctx), ctx.test)


def render_refund_link(ctx: RefundLinkContext, to: str) -> EmailMessageSpec:
    return _render(EmailKind.CUSTOMER_REFUND_ADDRESS, to, _fields(ctx), ctx.test)


def render_webhook_disabled(ctx: WebhookDisabledContext, to: str) -> EmailMessageSpec:
    return _render(EmailKind.MERCHANT_WEBHOOK_DISABLED, to, _fields(ctx), ctx.test)


# --- sending -----------------------------------------------------------------------------------


class MailDeliveryError(Exception):
    """Sending failed. ``permanent``: the server rejected recipient or message (5xx)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Mailer(Protocol):
    async def send(self, msg: EmailMessageSpec) -> None: ...


def build_email_message(spec: EmailMessageSpec, sender: str) -> EmailMessage:
    """A multipart/alternative message (text first, then HTML) with the usual headers."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = spec.to
    message["Subject"] = spec.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or "kassa.invalid")
    message["Auto-Submitted"] = "auto-generated"
    message["X-Kassa-Email"] = spec.kind.value
    message.set_content(spec.text)
    message.add_alternative(spec.html, subtype="html")
    return message


def _is_permanent(exc: Exception) -> bool:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return exc.code >= 500
    return False


class SmtpMailer:
    """Send through an SMTP server, one connection per message (transactional volume)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool = False,
        use_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        sender: str,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if starttls and use_tls:
            raise ValueError("starttls and use_tls are mutually exclusive")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout
        self.starttls, self.use_tls = starttls, use_tls
        self._username, self._password = username, password
        self._tls_context, self._local_hostname = tls_context, local_hostname

    def __repr__(self) -> str:  # never show the password
        return f"SmtpMailer(host={self.host!r}, port={self.port}, sender={self.sender!r})"

    async def send(self, msg: EmailMessageSpec) -> None:
        message = build_email_message(msg, self.sender)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self._username,
                password=self._password,
                use_tls=self.use_tls,
                start_tls=self.starttls,
                timeout=self.timeout,
                tls_context=self._tls_context,
                local_hostname=self._local_hostname,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailDeliveryError(
                f"sending {msg.kind.value} email to {msg.to} via {self.host}:{self.port} failed: "
                f"{type(exc).__name__}: {exc}",
                permanent=_is_permanent(exc),
            ) from exc
        log.info("email sent: kind=%s, to=%s", msg.kind.value, msg.to)


class RecordingMailer:
    """Keeps the latest messages in memory when no SMTP server is configured (development, tests).
    Bounded, so a long-running server without SMTP does not grow; the emails table keeps them all."""

    def __init__(self, keep: int = 1000) -> None:
        self.messages: collections.deque[EmailMessageSpec] = collections.deque(maxlen=keep)

    async def send(self, msg: EmailMessageSpec) -> None:
        self.messages.append(msg)
        log.info("email recorded (no SMTP configured): to=%s, subject=%s", msg.to, msg.subject)
