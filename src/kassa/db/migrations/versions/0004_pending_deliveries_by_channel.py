"""pending deliveries by channel: the claim walks each target's due deliveries in order

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 09:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_pending_channel",
        "deliveries",
        ["channel", "next_attempt_at", "pk"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_pending_channel", table_name="deliveries")
