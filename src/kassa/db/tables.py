"""The schema. Public ids are prefixed random strings; `pk` is internal and orders pagination."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

from kassa.db.types import Amount, PrimaryKey, SignedTotal, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _pk() -> Column[int]:
    return Column("pk", PrimaryKey, primary_key=True, autoincrement=True)


merchants = Table(
    "merchants",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320)),
    Column("default_confirmations", Integer, nullable=False),
    Column("invoice_lifetime", Integer, nullable=False),  # seconds
    Column("payment_tolerance_bps", Integer, nullable=False),
    Column("monitoring_window", Integer, nullable=False),  # seconds
    Column("late_payment_policy", String(20), nullable=False),
    Column("callback_url", Text),
    Column("callback_secret", Text),  # encrypted; signs callbacks to order/merchant callback URLs
    Column("notify_paid_email", Boolean, nullable=False, server_default=false()),
    Column("quote_at", String(20), nullable=False, server_default="creation"),  # or "method_choice"
    Column("password_hash", Text),  # argon2; HTTP Basic on the KnockturnAllee front
    Column("withdrawal_policy", String(20), nullable=False, server_default="manual"),
    Column("refund_policy", String(20), nullable=False, server_default="approve"),  # refunds by rule
    Column("withdrawal_url", Text),  # the merchant wallet's HTTPS endpoint (automatic withdrawals)
    Column("payout_hour", Integer, nullable=False, server_default="0"),  # daily payouts, UTC hour
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

payment_methods = Table(
    "payment_methods",
    metadata,
    _pk(),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("rail", String(40), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("secrets", Text),  # encrypted with the server key
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("merchant_pk", "rail", name="uq_payment_methods_merchant_rail"),
)

api_keys = Table(
    "api_keys",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE")),  # NULL: admin key
    Column("name", String(200)),
    Column("prefix", String(24), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

orders = Table(
    "orders",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("merchant_order_id", String(200)),
    Column("request_hash", String(64), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", String(10), nullable=False),
    Column("cart", JSON),
    Column("description", Text),
    Column("email", String(320)),
    Column("confirmations", Integer, nullable=False),
    Column("success_url", Text),
    Column("cancel_url", Text),
    Column("callback_url", Text),
    Column("fulfillment_url", Text),
    Column("session_id", String(200)),
    Column("metadata", JSON, nullable=False),
    Column("payment_methods", JSON, nullable=False),
    Column("method", String(40)),  # the chosen payment method
    Column("status", String(20), nullable=False),
    Column("exception", String(20)),
    Column("amount_due", Amount),  # in the chosen method's currency
    Column("tolerance_bps", Integer, nullable=False),  # terms are frozen at creation
    Column("monitoring_window", Integer, nullable=False),  # seconds
    Column("late_payment_policy", String(20), nullable=False),
    Column("amount_received", Amount, nullable=False),
    Column("amount_confirmed", Amount, nullable=False),
    Column("amount_refunded", Amount, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("timer_remaining", Float),  # seconds, while the expiry timer is paused
    Column("processing_since", UTCDateTime),
    Column("invalid_at", UTCDateTime),  # processing_since + monitoring_window, for the sweep
    Column("late", Boolean, nullable=False),
    Column("paid_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("test", Boolean, nullable=False),
    Column("archived", Boolean, nullable=False, server_default=false()),  # hidden from lists by default
    Column("locale", String(20)),  # the customer's language, when the merchant knows it (BCP 47)
    Column("auto_redirect", Boolean, nullable=False, server_default=true()),  # to success_url once paid
    Column("version", Integer, nullable=False),  # bumps on every change: the ETag
    Column("event_seq", Integer, nullable=False),  # last per-order event sequence number
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("merchant_pk", "merchant_order_id", name="uq_orders_merchant_order_id"),
    Index("ix_orders_merchant_pk_pk", "merchant_pk", "pk"),
    Index("ix_orders_merchant_order_id", "merchant_order_id"),  # Taler's poll-payment has no merchant
    Index("ix_orders_status_expires_at", "status", "expires_at"),
    Index("ix_orders_status_invalid_at", "status", "invalid_at"),
)

quotes = Table(
    "quotes",
    metadata,
    _pk(),
    Column("order_pk", ForeignKey("orders.pk", ondelete="CASCADE"), nullable=False),
    Column("method", String(40), nullable=False),
    Column("rail", String(40), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("rate", String(80), nullable=False),  # decimal text: order currency per method unit
    Column("destination", Text),
    Column("payment_uri", Text),
    Column("note", Text),  # the rail's line for the payer, e.g. the chain to pay on
    Column("expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("order_pk", "method", name="uq_quotes_order_method"),
    Index("ix_quotes_destination", "destination"),  # a watcher's sighting names its destination
)

payments = Table(
    "payments",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("order_pk", ForeignKey("orders.pk", ondelete="CASCADE"), nullable=False),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("rail", String(40), nullable=False),
    Column("method", String(40), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("reference", String(200), nullable=False),  # tx id (+ output) or gateway trade number
    Column("confirmations", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("late", Boolean, nullable=False),  # arrived after the order expired/closed
    # Unconfirmed and signalling that it may be replaced (Bitcoin's BIP 125): riskier until mined.
    Column("replaceable", Boolean, nullable=False, server_default=false()),
    Column("test", Boolean, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime),
    Column("rejected_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("merchant_pk", "rail", "reference", name="uq_payments_reference"),
    Index("ix_payments_order_pk", "order_pk"),
    Index("ix_payments_rail_status", "merchant_pk", "rail", "status"),
)

submissions = Table(
    "submissions",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("order_pk", ForeignKey("orders.pk", ondelete="CASCADE"), nullable=False),
    Column("rail", String(40), nullable=False),
    Column("reference", String(200), nullable=False),  # e.g. a Grin slate id
    Column("amount", Amount, nullable=False),
    Column("status", String(20), nullable=False),  # in_flight, accepted, refused, failed
    Column("answer", JSON),  # the counterpart's answer, replayed to a payer who sends it again
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("merchant_pk", "rail", "reference", name="uq_submissions_reference"),
    Index("ix_submissions_order_pk", "order_pk"),
    # One submission in flight per order: the second payer waits (409), never pays twice.
    Index(
        "uq_submissions_in_flight",
        "order_pk",
        unique=True,
        postgresql_where=text("status = 'in_flight'"),
        sqlite_where=text("status = 'in_flight'"),
    ),
)

events = Table(
    "events",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("type", String(60), nullable=False),
    Column("object_type", String(20), nullable=False),
    Column("object_id", String(40), nullable=False),
    Column("order_id", String(40)),
    Column("sequence", Integer, nullable=False),  # per order
    Column("data", JSON, nullable=False),
    Column("test", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_events_merchant_pk_pk", "merchant_pk", "pk"),
    Index("ix_events_object_id", "object_id"),
    Index("ix_events_created_at", "created_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    _pk(),
    Column("scope", String(64), nullable=False),  # hash of the credential that sent it
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer),  # NULL while the first request is in flight
    Column("content_type", String(100)),
    Column("body", Text),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", String(500)),
    Column("event_types", JSON, nullable=False),  # ["*"] for all
    Column("enabled", Boolean, nullable=False),
    Column("secret", Text, nullable=False),  # encrypted
    Column("previous_secret", Text),  # encrypted; still signs until previous_secret_expires_at
    Column("previous_secret_expires_at", UTCDateTime),
    Column("disabled_reason", Text),
    Column("failing_since", UTCDateTime),
    # "kassa" (Standard Webhooks) or "greenfield" (BTCPay's body and BTCPay-Sig, compat/greenfield)
    Column("format", String(20), nullable=False, server_default="kassa"),
    Column("options", JSON),  # the format's own settings (greenfield: automaticRedelivery)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_webhook_endpoints_merchant_pk", "merchant_pk"),
)

deliveries = Table(
    "deliveries",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("event_pk", ForeignKey("events.pk", ondelete="CASCADE"), nullable=False),
    Column("endpoint_pk", ForeignKey("webhook_endpoints.pk", ondelete="CASCADE")),  # NULL: a callback URL
    Column("url", Text, nullable=False),
    Column("channel", String(80), nullable=False),  # per-target FIFO key: "whe_…" or "cb:<merchant>:<url>"
    Column("order_id", String(40)),  # with channel: events of one order go out in sequence
    Column("status", String(20), nullable=False),  # pending, succeeded, failed, canceled
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("leased_until", UTCDateTime),
    Column("lease", String(40)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
    Index("ix_deliveries_channel_order", "channel", "order_id", "status"),
    Index("ix_deliveries_endpoint_pk_pk", "endpoint_pk", "pk"),
    Index("ix_deliveries_event_pk", "event_pk"),  # an event's deliveries (redeliveries, Greenfield)
    # The claim walks each target's pending deliveries in order (worker/deliveries.py).
    Index(
        "ix_deliveries_pending_channel",
        "channel",
        "next_attempt_at",
        "pk",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    _pk(),
    Column("delivery_pk", ForeignKey("deliveries.pk", ondelete="CASCADE"), nullable=False),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("duration_ms", Integer, nullable=False),
    Column("error", Text),
    Column("response_excerpt", Text),
    Index("ix_delivery_attempts_delivery_pk", "delivery_pk"),
)

emails = Table(
    "emails",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("kind", String(60), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("subject", Text, nullable=False),
    Column("text_body", Text, nullable=False),
    Column("html_body", Text, nullable=False),
    Column("order_id", String(40)),
    Column("status", String(20), nullable=False),  # pending, sent, failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("leased_until", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Index("ix_emails_due", "status", "next_attempt_at"),
)

rail_states = Table(
    "rail_states",
    metadata,
    _pk(),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("rail", String(40), nullable=False),
    Column("state", JSON, nullable=False),  # a watcher's cursor (e.g. last scanned height)
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("merchant_pk", "rail", name="uq_rail_states_merchant_rail"),
)


# ----- addresses derived from merchants' public keys (services/addresses.py) --------------------------

address_keys = Table(
    "address_keys",
    metadata,
    _pk(),
    Column("key_id", String(100), nullable=False, unique=True),  # the rail's id of key + script + network
    Column("rail", String(40), nullable=False),
    Column("next_index", Integer, nullable=False),  # never goes back: an index is used once
    Column("created_at", UTCDateTime, nullable=False),
)

derived_addresses = Table(
    "derived_addresses",
    metadata,
    _pk(),
    Column("key_pk", ForeignKey("address_keys.pk", ondelete="CASCADE"), nullable=False),
    Column("derivation_index", Integer, nullable=False),
    Column("address", String(200), nullable=False),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("order_id", String(40), nullable=False),  # the order it was given to last
    Column("uses", Integer, nullable=False),  # > 1: recycled from expired, never-paid orders
    Column("allocated_at", UTCDateTime, nullable=False),
    UniqueConstraint("key_pk", "derivation_index", name="uq_derived_addresses_key_index"),
    Index("ix_derived_addresses_merchant_key", "merchant_pk", "key_pk"),
)


# ----- the ledger (domain/ledger.py, services/ledger.py) -------------------------------------------

ledger_postings = Table(
    "ledger_postings",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("key", String(200), nullable=False),  # the fact recorded: posted once, ever
    Column("kind", String(40), nullable=False),
    Column("test", Boolean, nullable=False),
    Column("order_id", String(40)),  # the public id of the order it is about, if any
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("merchant_pk", "key", name="uq_ledger_postings_merchant_key"),
)
ledger_entries = Table(
    "ledger_entries",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("posting_pk", ForeignKey("ledger_postings.pk", ondelete="CASCADE"), nullable=False),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("test", Boolean, nullable=False),
    Column("account", String(30), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("amount", SignedTotal, nullable=False),  # positive: into the account
    Column("kind", String(40), nullable=False),  # the posting's, for filtering
    Column("order_id", String(40)),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_ledger_entries_merchant_pk_pk", "merchant_pk", "pk"),
    Index("ix_ledger_entries_merchant_order", "merchant_pk", "order_id"),
    Index("ix_ledger_entries_posting_pk", "posting_pk"),
)
ledger_balances = Table(
    "ledger_balances",
    metadata,
    _pk(),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("test", Boolean, nullable=False),
    Column("account", String(30), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("balance", SignedTotal, nullable=False),  # the sum of the account's entries, kept as they post
    Column("entries", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("merchant_pk", "test", "account", "currency", name="uq_ledger_balances_account"),
)


refunds = Table(
    "refunds",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("order_pk", ForeignKey("orders.pk", ondelete="CASCADE"), nullable=False),
    Column("rail", String(40), nullable=False),
    Column("method", String(40), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("reason", Text),
    Column("origin", String(20), nullable=False),  # "merchant", or the rule that made it
    Column("approved", Boolean, nullable=False),  # may be sent (a rule's refund may wait for the merchant)
    Column("status", String(20), nullable=False),
    Column("destination", Text),  # where it goes (an address); none yet: pending_destination
    Column("reference", String(200)),  # the transaction that sent it
    Column("prepared", Text),  # the transaction built before it was broadcast (kept until sent)
    Column("received", Amount),  # what the customer got: the amount less the network's fee
    Column("network_fee", Amount),
    Column("failure", Text),
    Column("test", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("confirmed_at", UTCDateTime),
    Index("ix_refunds_merchant_pk_pk", "merchant_pk", "pk"),
    Index("ix_refunds_order_pk", "order_pk"),
    Index("ix_refunds_status", "status"),  # the worker's pass looks for pending ones
)


payouts = Table(
    "payouts",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("rail", String(40), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("amount", Amount, nullable=False),  # taken from the balance
    Column("fee", Amount, nullable=False),  # the operator's, out of the amount
    Column("received", Amount),  # what the destination got (known once the transaction is built)
    Column("network_fee", Amount),
    Column("destination", Text, nullable=False),
    Column("origin", String(20), nullable=False),  # manual, immediate, daily
    Column("period", String(10)),  # a daily payout's day: one per merchant, rail, currency and day
    Column("status", String(20), nullable=False),
    Column("reference", String(200)),  # the transaction's id
    Column("prepared", Text),  # the transaction built before it was broadcast (kept until sent)
    Column("unsigned", Text),  # a manual payout's transaction for the merchant to sign
    Column("failure", Text),
    Column("test", Boolean, nullable=False),
    Column("event_seq", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("confirmed_at", UTCDateTime),
    UniqueConstraint("merchant_pk", "rail", "currency", "test", "period", name="uq_payouts_daily_period"),
    Index("ix_payouts_merchant_pk_pk", "merchant_pk", "pk"),
    Index("ix_payouts_status", "status"),  # the worker's pass looks for sending and sent ones
)


# ----- the merchant dashboard's users and sessions (services/users.py, dashboard/) -------------------

users = Table(
    "users",
    metadata,
    _pk(),
    Column("id", String(40), nullable=False, unique=True),
    Column("merchant_pk", ForeignKey("merchants.pk", ondelete="CASCADE"), nullable=False),
    Column("email", String(254), nullable=False, unique=True),  # lower-cased; the sign-in name
    Column("name", String(200)),
    Column("password_hash", Text, nullable=False),  # argon2id
    Column("totp_secret", Text),  # sealed with the server key; set: a code is asked at sign-in
    Column("totp_last_step", Integer),  # the last accepted code's time step: a code works once
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_sign_in_at", UTCDateTime),
    Index("ix_users_merchant_pk", "merchant_pk"),
)

user_sessions = Table(
    "user_sessions",
    metadata,
    _pk(),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the cookie's token
    Column("user_pk", ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),  # signed out, or ended by a password change
    Index("ix_user_sessions_user_pk", "user_pk"),
)
