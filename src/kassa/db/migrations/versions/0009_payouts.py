"""payouts, the merchant's daily payout hour, and refunds' prepared transactions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 16:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kassa.db.types import Amount, PrimaryKey, UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payout_hour", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prepared", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("received", Amount(), nullable=True))
        batch_op.add_column(sa.Column("network_fee", Amount(), nullable=True))
    op.create_table(
        "payouts",
        sa.Column("pk", PrimaryKey, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_pk", BIG, nullable=False),
        sa.Column("rail", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("amount", Amount(), nullable=False),
        sa.Column("fee", Amount(), nullable=False),
        sa.Column("received", Amount(), nullable=True),
        sa.Column("network_fee", Amount(), nullable=True),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("prepared", sa.Text(), nullable=True),
        sa.Column("unsigned", sa.Text(), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_pk"],
            ["merchants.pk"],
            name=op.f("fk_payouts_merchant_pk_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_payouts")),
        sa.UniqueConstraint("id", name=op.f("uq_payouts_id")),
        sa.UniqueConstraint(
            "merchant_pk", "rail", "currency", "test", "period", name="uq_payouts_daily_period"
        ),
    )
    op.create_index("ix_payouts_merchant_pk_pk", "payouts", ["merchant_pk", "pk"])
    op.create_index("ix_payouts_status", "payouts", ["status"])


def downgrade() -> None:
    op.drop_table("payouts")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("network_fee")
        batch_op.drop_column("received")
        batch_op.drop_column("prepared")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("payout_hour")
