"""the ledger: postings, entries and the balances kept as they post

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kassa.db.types import PrimaryKey, SignedTotal, UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _merchant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["merchant_pk"], ["merchants.pk"], name=op.f(f"fk_{table}_merchant_pk_merchants"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "ledger_postings",
        sa.Column("pk", PrimaryKey, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_pk", BIG, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _merchant_fk("ledger_postings"),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ledger_postings")),
        sa.UniqueConstraint("id", name=op.f("uq_ledger_postings_id")),
        sa.UniqueConstraint("merchant_pk", "key", name="uq_ledger_postings_merchant_key"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("pk", PrimaryKey, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("posting_pk", BIG, nullable=False),
        sa.Column("merchant_pk", BIG, nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("account", sa.String(length=30), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("amount", SignedTotal(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["posting_pk"],
            ["ledger_postings.pk"],
            name=op.f("fk_ledger_entries_posting_pk_ledger_postings"),
            ondelete="CASCADE",
        ),
        _merchant_fk("ledger_entries"),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("id", name=op.f("uq_ledger_entries_id")),
    )
    op.create_index("ix_ledger_entries_merchant_pk_pk", "ledger_entries", ["merchant_pk", "pk"])
    op.create_index("ix_ledger_entries_merchant_order", "ledger_entries", ["merchant_pk", "order_id"])
    op.create_index("ix_ledger_entries_posting_pk", "ledger_entries", ["posting_pk"])
    op.create_table(
        "ledger_balances",
        sa.Column("pk", PrimaryKey, autoincrement=True, nullable=False),
        sa.Column("merchant_pk", BIG, nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("account", sa.String(length=30), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("balance", SignedTotal(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _merchant_fk("ledger_balances"),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ledger_balances")),
        sa.UniqueConstraint("merchant_pk", "test", "account", "currency", name="uq_ledger_balances_account"),
    )


def downgrade() -> None:
    op.drop_table("ledger_balances")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_postings")
