"""orders by the merchant's order id alone: Taler's poll-payment names no merchant

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_merchant_order_id", "orders", ["merchant_order_id"])


def downgrade() -> None:
    op.drop_index("ix_orders_merchant_order_id", table_name="orders")
