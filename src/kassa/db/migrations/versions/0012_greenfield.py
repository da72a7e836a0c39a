"""orders.archived, orders.locale, orders.auto_redirect; webhook_endpoints.format and .options;
ix_deliveries_event_pk (the Greenfield front, docs/compat/greenfield.md)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archived", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("locale", sa.String(length=20), nullable=True))
        batch_op.add_column(
            sa.Column("auto_redirect", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("format", sa.String(length=20), nullable=False, server_default="kassa"))
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=True))
    op.create_index("ix_deliveries_event_pk", "deliveries", ["event_pk"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_event_pk", table_name="deliveries")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("options")
        batch_op.drop_column("format")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("auto_redirect")
        batch_op.drop_column("locale")
        batch_op.drop_column("archived")
