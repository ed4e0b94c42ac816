"""Honest run states: a heartbeat (lease) and the time a run's work was committed, per pipeline run.

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-03

``heartbeat_at`` is renewed by a running flow every few seconds; a ``running`` row whose heartbeat
is older than the lease is closed by the next run (:func:`fraud_core.db.repository.close_stale_runs`),
so a run that died without recording its end (worker killed, database lost) still counts in the
weekly success rate. ``committed_at`` is written in the same transaction as the run's transactions
and scores, so whoever closes the row knows whether its work was stored. The model is
:class:`fraud_core.db.models.PipelineRun`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fraud_core.db.types import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("committed_at", UTCDateTime(), nullable=True))
    op.create_index("ix_pipeline_runs_status", "pipeline_runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_pipeline_runs_status", table_name="pipeline_runs")
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("committed_at")
        batch.drop_column("heartbeat_at")
