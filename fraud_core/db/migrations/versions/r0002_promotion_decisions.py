"""Promotion audit: one row per decision of the retraining's promotion gate.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-24

The model is :class:`fraud_core.db.models.PromotionAudit`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fraud_core.db.types import JSONType, UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()") if op.get_context().dialect.name == "postgresql" else sa.text("(CURRENT_TIMESTAMP)")


def upgrade() -> None:
    op.create_table(
        "promotion_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("challenger_version", sa.String(64), nullable=False),
        sa.Column("champion_version", sa.String(64), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("reasons", JSONType, nullable=False),
        sa.Column("challenger_metrics", JSONType, nullable=False),
        sa.Column("champion_metrics", JSONType, nullable=True),
        sa.Column("gate", JSONType, nullable=False),
        sa.Column("eval_start", UTCDateTime(), nullable=True),
        sa.Column("eval_end", UTCDateTime(), nullable=True),
        sa.Column("train_start", UTCDateTime(), nullable=True),
        sa.Column("train_end", UTCDateTime(), nullable=True),
        sa.Column("n_eval", sa.Integer(), nullable=False),
        sa.Column("n_eval_fraud", sa.Integer(), nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_promotion_decisions"),
    )
    op.create_index("ix_promotion_decisions_created_at", "promotion_decisions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_promotion_decisions_created_at", table_name="promotion_decisions")
    op.drop_table("promotion_decisions")
