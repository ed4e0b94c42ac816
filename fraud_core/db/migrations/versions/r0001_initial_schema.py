"""Initial warehouse schema.

Revision ID: 0001
Revises:
Create Date: 2025-11-24

Hand-written: on PostgreSQL ``transactions`` is range-partitioned by month on ``event_time`` with a
DEFAULT partition; monthly partitions are created by the loader
(:func:`fraud_core.db.partitions.ensure_partitions`), not here. ``transaction_keys`` keeps
``trans_num`` unique across partitions (see :mod:`fraud_core.db.models`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fraud_core.db.types import JSONType, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()") if op.get_context().dialect.name == "postgresql" else sa.text("(CURRENT_TIMESTAMP)")


def upgrade() -> None:
    is_pg = op.get_context().dialect.name == "postgresql"

    op.create_table(
        "transactions",
        sa.Column("trans_num", sa.String(64), nullable=False),
        sa.Column("card_id", sa.String(64), nullable=False),
        sa.Column("card_last4", sa.String(4), nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("merchant", sa.String(), nullable=False),
        sa.Column("merch_lat", sa.Float(), nullable=False),
        sa.Column("merch_long", sa.Float(), nullable=False),
        sa.Column("gender", sa.String(1), nullable=False),
        sa.Column("dob", sa.Date(), nullable=False),
        sa.Column("city", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("zip", sa.Integer(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("long", sa.Float(), nullable=False),
        sa.Column("city_pop", sa.BigInteger(), nullable=False),
        sa.Column("job", sa.String(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("ingested_at", UTCDateTime(), server_default=_now(), nullable=False),
        # event_time first: time-ordered loads append to this index (see fraud_core.db.models).
        sa.PrimaryKeyConstraint("event_time", "trans_num", name="pk_transactions"),
        postgresql_partition_by="RANGE (event_time)",
    )
    if is_pg:
        # Rows outside every monthly partition land here rather than failing the insert.
        op.execute("CREATE TABLE transactions_default PARTITION OF transactions DEFAULT")
    # On a partitioned table these are partitioned indexes: every partition gets its own.
    op.create_index("ix_transactions_card_id_event_time", "transactions", ["card_id", "event_time"])

    op.create_table(
        "transaction_keys",
        sa.Column("trans_num", sa.String(64), nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("trans_num", name="pk_transaction_keys"),
    )

    op.create_table(
        "labels",
        sa.Column("trans_num", sa.String(64), nullable=False),
        sa.Column("is_fraud", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("labelled_at", UTCDateTime(), nullable=False),
        sa.Column("analyst", sa.String(128), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        # The natural key: no surrogate id, one index less on a table as large as transactions.
        sa.PrimaryKeyConstraint("trans_num", "origin", name="pk_labels"),
        sa.CheckConstraint("origin IN ('feed', 'analyst', 'import')", name="ck_labels_origin"),
    )
    op.create_index("ix_labels_labelled_at", "labels", ["labelled_at"])

    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trans_num", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("decision", sa.Boolean(), nullable=False),
        sa.Column("risk_level", sa.String(16), nullable=False),
        sa.Column("reasons", JSONType, nullable=False),
        sa.Column("scored_at", UTCDateTime(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
        sa.UniqueConstraint("trans_num", "model_version", "role", name="uq_predictions_trans_num_model_role"),
        sa.CheckConstraint("role IN ('champion', 'challenger')", name="ck_predictions_role"),
    )
    op.create_index("ix_predictions_scored_at", "predictions", ["scored_at"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("card_last4", sa.String(4), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", UTCDateTime(), server_default=_now(), nullable=False),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("channels", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("kind", "subject", name="uq_alerts_kind_subject"),
        sa.CheckConstraint("kind IN ('fraud', 'quality')", name="ck_alerts_kind"),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed', 'gave_up')", name="ck_alerts_status"),
    )
    op.create_index("ix_alerts_status_created_at", "alerts", ["status", "created_at"])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
        sa.Column("train_start", UTCDateTime(), nullable=True),
        sa.Column("train_end", UTCDateTime(), nullable=True),
        sa.Column("artifact_uri", sa.String(), nullable=True),
        sa.Column("hub_revision", sa.String(128), nullable=True),
        sa.Column("alias", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
    )

    op.create_table(
        "quality_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("checks", JSONType, nullable=False),
        sa.Column("markdown", sa.String(), nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quality_reports"),
        sa.CheckConstraint("status IN ('pass', 'warn', 'fail')", name="ck_quality_reports_status"),
    )
    op.create_index("ix_quality_reports_created_at", "quality_reports", ["created_at"])

    op.create_table(
        "source_cursors",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("transactions_cursor", sa.String(), nullable=True),
        sa.Column("labels_cursor", sa.String(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_source_cursors"),
    )

    op.create_table(
        "rejected_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=True),
        sa.Column("trans_num", sa.String(), nullable=True),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejected_records"),
    )
    op.create_index("ix_rejected_records_received_at", "rejected_records", ["received_at"])

    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=False),
        sa.Column("flow_name", sa.String(128), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counts", JSONType, nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_runs"),
        sa.UniqueConstraint("flow_run_id", name="uq_pipeline_runs_flow_run_id"),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed', 'crashed', 'cancelled')", name="ck_pipeline_runs_status"
        ),
    )
    op.create_index("ix_pipeline_runs_flow_name_started_at", "pipeline_runs", ["flow_name", "started_at"])


def downgrade() -> None:
    for table in (
        "pipeline_runs",
        "rejected_records",
        "source_cursors",
        "quality_reports",
        "model_versions",
        "alerts",
        "predictions",
        "labels",
        "transaction_keys",
    ):
        op.drop_table(table)
    # Dropping the partitioned parent drops its partitions (monthly and DEFAULT) with it.
    op.drop_table("transactions")
