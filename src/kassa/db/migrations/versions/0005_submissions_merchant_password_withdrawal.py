"""submissions (proxied payments such as Grin slates), merchant password and withdrawal policy

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kassa.db.types import Amount, PrimaryKey, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IN_FLIGHT = sa.text("status = 'in_flight'")


def upgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("withdrawal_policy", sa.String(length=20), server_default="manual", nullable=False)
        )
        batch_op.add_column(sa.Column("withdrawal_url", sa.Text(), nullable=True))
    op.create_table(
        "submissions",
        sa.Column("pk", PrimaryKey, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rail", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("amount", Amount(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_pk"],
            ["merchants.pk"],
            name=op.f("fk_submissions_merchant_pk_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_pk"], ["orders.pk"], name=op.f("fk_submissions_order_pk_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_submissions")),
        sa.UniqueConstraint("id", name=op.f("uq_submissions_id")),
        sa.UniqueConstraint("merchant_pk", "rail", "reference", name="uq_submissions_reference"),
    )
    op.create_index("ix_submissions_order_pk", "submissions", ["order_pk"])
    op.create_index(
        "uq_submissions_in_flight",
        "submissions",
        ["order_pk"],
        unique=True,
        postgresql_where=_IN_FLIGHT,
        sqlite_where=_IN_FLIGHT,
    )


def downgrade() -> None:
    op.drop_index("uq_submissions_in_flight", table_name="submissions")
    op.drop_index("ix_submissions_order_pk", table_name="submissions")
    op.drop_table("submissions")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("withdrawal_url")
        batch_op.drop_column("withdrawal_policy")
        batch_op.drop_column("password_hash")
