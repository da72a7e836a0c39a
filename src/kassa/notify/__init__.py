"""The notification edge: safe outbound HTTP, webhook signing and retry schedule, email.

Pure building blocks without database access; the outbox workers call them.
"""

from kassa.notify.email import (
    TEST_MARKER,
    EmailKind,
    EmailMessageSpec,
    MailDeliveryError,
    Mailer,
    OrderEmailContext,
    RecordingMailer,
    SmtpMailer,
    WebhookDisabledContext,
    build_email_message,
    render_order_email,
    render_webhook_disabled,
)
from kassa.notify.outbound import (
    MAX_URL_LENGTH,
    DeliveryAttempt,
    OutboundClient,
    Resolver,
    UnsafeTarget,
    deliver,
    parse_retry_after,
    refusal_reason,
    system_resolver,
    validate_target_url,
)
from kassa.notify.schedule import MAX_ATTEMPTS, SCHEDULE, next_attempt_delay
from kassa.notify.signing import new_secret, sign_headers, validate_secret

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_URL_LENGTH",
    "SCHEDULE",
    "TEST_MARKER",
    "DeliveryAttempt",
    "EmailKind",
    "EmailMessageSpec",
    "MailDeliveryError",
    "Mailer",
    "OrderEmailContext",
    "OutboundClient",
    "RecordingMailer",
    "Resolver",
    "SmtpMailer",
    "UnsafeTarget",
    "WebhookDisabledContext",
    "build_email_message",
    "deliver",
    "new_secret",
    "next_attempt_delay",
    "parse_retry_after",
    "refusal_reason",
    "render_order_email",
    "render_webhook_disabled",
    "sign_headers",
    "system_resolver",
    "validate_secret",
    "validate_target_url",
]
