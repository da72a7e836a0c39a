"""addresses derived from merchants' public keys, payments' replaceable flag, quotes by destination

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kassa.db.types import PrimaryKey, UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replaceable", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index("ix_quotes_destination", "quotes", ["destination"])
    op.create_table(
        "address_keys",
        sa.Column("pk", PrimaryKey, autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(length=100), nullable=False),
        sa.Column("rail", sa.String(length=40), nullable=False),
        sa.Column("next_index", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_address_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_address_keys_key_id")),
    )
    op.create_table(
        "derived_addresses",
        sa.Column("pk", PrimaryKey, autoincrement=True, nullable=False),
        sa.Column("key_pk", BIG, nullable=False),
        sa.Column("derivation_index", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("merchant_pk", BIG, nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("allocated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_pk"],
            ["address_keys.pk"],
            name=op.f("fk_derived_addresses_key_pk_address_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_pk"],
            ["merchants.pk"],
            name=op.f("fk_derived_addresses_merchant_pk_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_derived_addresses")),
        sa.UniqueConstraint("key_pk", "derivation_index", name="uq_derived_addresses_key_index"),
    )
    op.create_index("ix_derived_addresses_merchant_key", "derived_addresses", ["merchant_pk", "key_pk"])


def downgrade() -> None:
    op.drop_table("derived_addresses")
    op.drop_table("address_keys")
    op.drop_index("ix_quotes_destination", table_name="quotes")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("replaceable")
