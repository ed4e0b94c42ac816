"""Each card's first transaction in each category, kept beside ``transactions``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

The model is :class:`fraud_core.db.models.CardCategory`; the upgrade fills it from the stored
transactions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fraud_core.db.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "card_categories",
        sa.Column("card_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("first_event_time", UTCDateTime(), nullable=False),
        sa.Column("first_trans_num", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("card_id", "category", name="pk_card_categories"),
    )
    collate = ' COLLATE "C"' if op.get_context().dialect.name == "postgresql" else ""
    op.execute(
        "INSERT INTO card_categories (card_id, category, first_event_time, first_trans_num) "
        "SELECT card_id, category, event_time, trans_num FROM ("
        "  SELECT card_id, category, event_time, trans_num, row_number() OVER ("
        f"    PARTITION BY card_id, category ORDER BY event_time, trans_num{collate}) AS rn"
        "  FROM transactions) AS ranked "
        "WHERE rn = 1"
    )


def downgrade() -> None:
    op.drop_table("card_categories")
