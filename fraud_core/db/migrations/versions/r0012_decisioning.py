"""Decisioning: rules, allow/block lists, their change log, and each prediction's decision and reasons.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-03

``decision_rules`` and ``decision_list_entries`` hold the policy as it is now;
``decision_policy_changes`` keeps every change (who, when, before, after), and its largest id is
the policy's version, which the web app and the flow poll to pick changes up without a restart.
``predictions`` gains the outcome (approve / review / decline), the model band, the rule and list
hits and the policy version. The models are in :mod:`fraud_core.db.models`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fraud_core.db.types import JSONType, UTCDateTime

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()") if op.get_context().dialect.name == "postgresql" else sa.text("(CURRENT_TIMESTAMP)")


def upgrade() -> None:
    op.create_table(
        "decision_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decision_rules"),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("expression", sa.String(2000), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("name", name="uq_decision_rules_name"),
        sa.CheckConstraint("action IN ('approve', 'review', 'decline')", name="ck_decision_rules_action"),
        sa.CheckConstraint("mode IN ('active', 'shadow')", name="ck_decision_rules_mode"),
    )
    op.create_table(
        "decision_list_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decision_list_entries"),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("kind", "field", "value", name="uq_decision_list_entries_value"),
        sa.CheckConstraint("kind IN ('allow', 'block')", name="ck_decision_list_entries_kind"),
        sa.CheckConstraint("field IN ('card', 'merchant', 'category')", name="ck_decision_list_entries_field"),
    )
    op.create_table(
        "decision_policy_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decision_policy_changes"),
        sa.Column("changed_at", UTCDateTime(), nullable=False, server_default=_now()),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(16), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("before", JSONType, nullable=True),
        sa.Column("after", JSONType, nullable=True),
    )
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=True))
        batch.add_column(sa.Column("band", sa.String(16), nullable=True))
        batch.add_column(sa.Column("rule_hits", JSONType, nullable=True))
        batch.add_column(sa.Column("list_hits", JSONType, nullable=True))
        batch.add_column(sa.Column("policy_version", sa.Integer(), nullable=True))
        batch.create_check_constraint(
            "ck_predictions_outcome", "outcome IS NULL OR outcome IN ('approve', 'review', 'decline')"
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_constraint("ck_predictions_outcome", type_="check")
        batch.drop_column("policy_version")
        batch.drop_column("list_hits")
        batch.drop_column("rule_hits")
        batch.drop_column("band")
        batch.drop_column("outcome")
    op.drop_table("decision_policy_changes")
    op.drop_table("decision_list_entries")
    op.drop_table("decision_rules")
