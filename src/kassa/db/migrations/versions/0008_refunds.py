"""refunds, and the merchant's refund policy

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kassa.db.types import Amount, PrimaryKey, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refund_policy", sa.String(length=20), server_default="approve", nullable=False)
        )
    op.create_table(
        "refunds",
        sa.Column("pk", PrimaryKey, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_pk", BIG, nullable=False),
        sa.Column("order_pk", BIG, nullable=False),
        sa.Column("rail", sa.String(length=40), nullable=False),
        sa.Column("method", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("amount", Amount(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("destination", sa.Text(), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_pk"],
            ["merchants.pk"],
            name=op.f("fk_refunds_merchant_pk_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_pk"], ["orders.pk"], name=op.f("fk_refunds_order_pk_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_refunds")),
        sa.UniqueConstraint("id", name=op.f("uq_refunds_id")),
    )
    op.create_index("ix_refunds_merchant_pk_pk", "refunds", ["merchant_pk", "pk"])
    op.create_index("ix_refunds_order_pk", "refunds", ["order_pk"])
    op.create_index("ix_refunds_status", "refunds", ["status"])


def downgrade() -> None:
    op.drop_table("refunds")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("refund_policy")
