"""Cases: one active case per card, its flagged transactions and its append-only timeline.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

The models are :class:`fraud_core.db.models.Case`, :class:`~fraud_core.db.models.CaseTransaction`
and :class:`~fraud_core.db.models.CaseEvent`. A partial unique index keeps one case in ``open`` or
``in_review`` per card, so two runs alerting on the same card at once join one case.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fraud_core.db.types import IdentifierString, JSONType, UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "state IN ('open', 'in_review')"


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("card_id", IdentifierString, nullable=False),
        sa.Column("card_last4", sa.String(length=4), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("n_transactions", sa.Integer(), nullable=False),
        sa.Column("amount_at_risk", sa.Float(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'in_review', 'resolved_fraud', 'resolved_legitimate')", name="ck_cases_state"
        ),
    )
    op.create_index(
        "uq_cases_active_card",
        "cases",
        ["card_id"],
        unique=True,
        postgresql_where=sa.text(_ACTIVE),
        sqlite_where=sa.text(_ACTIVE),
    )
    op.create_index("ix_cases_state_priority", "cases", ["state", "priority"])
    op.create_index("ix_cases_assignee_state", "cases", ["assignee", "state"])
    op.create_index("ix_cases_card_last4", "cases", ["card_last4"])
    op.create_table(
        "case_transactions",
        sa.Column("trans_num", IdentifierString, primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("added_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("verdict", sa.Boolean(), nullable=True),
        sa.Column("verdict_by", sa.String(length=64), nullable=True),
        sa.Column("verdict_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_case_transactions_case_id", "case_transactions", ["case_id"])
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("detail", JSONType, nullable=False),
        sa.CheckConstraint(
            "kind IN ('opened', 'alert', 'assigned', 'verdict', 'list', 'note', 'resolved')",
            name="ck_case_events_kind",
        ),
    )
    op.create_index("ix_case_events_case_id_at", "case_events", ["case_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_case_events_case_id_at", table_name="case_events")
    op.drop_table("case_events")
    op.drop_index("ix_case_transactions_case_id", table_name="case_transactions")
    op.drop_table("case_transactions")
    for index in ("ix_cases_card_last4", "ix_cases_assignee_state", "ix_cases_state_priority", "uq_cases_active_card"):
        op.drop_index(index, table_name="cases")
    op.drop_table("cases")
