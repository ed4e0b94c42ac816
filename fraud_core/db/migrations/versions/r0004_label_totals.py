"""Label totals kept between runs, and the change counters that say when they are stale.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

The models are :class:`fraud_core.db.models.LabelEpoch`, :class:`~fraud_core.db.models.LabelTotal`
and :class:`~fraud_core.db.models.LabelTotalsState`. On PostgreSQL, statement-level triggers count
every write to ``labels`` and every new transaction key per UTC day of the transaction
(:mod:`fraud_core.db.label_totals` reads them); SQLite, the embedded demo, computes the totals
every time and has no triggers.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fraud_core.db.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each appends how many rows a statement changed, per day of their transactions. Append-only: no
# writer waits for another, and none can deadlock on a counter (the snapshot writer compacts the
# rows of past days; sums are what count).
_COUNT_LABELS = """
CREATE FUNCTION fd_count_label_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO label_epochs (day, changes)
  SELECT (k.event_time AT TIME ZONE 'UTC')::date, count(*)
    FROM changed c JOIN transaction_keys k ON k.trans_num = c.trans_num
   GROUP BY 1;
  RETURN NULL;
END $$
"""
_COUNT_KEYS = """
CREATE FUNCTION fd_count_new_transactions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO label_epochs (day, changes)
  SELECT (event_time AT TIME ZONE 'UTC')::date, count(*) FROM changed GROUP BY 1;
  RETURN NULL;
END $$
"""
_TRIGGERS = (
    ("labels_inserted", "INSERT", "labels", "NEW", "fd_count_label_changes"),
    ("labels_updated", "UPDATE", "labels", "NEW", "fd_count_label_changes"),
    ("labels_deleted", "DELETE", "labels", "OLD", "fd_count_label_changes"),
    ("transaction_keys_inserted", "INSERT", "transaction_keys", "NEW", "fd_count_new_transactions"),
    ("transaction_keys_deleted", "DELETE", "transaction_keys", "OLD", "fd_count_new_transactions"),
)


def upgrade() -> None:
    op.create_table(
        "label_epochs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("changes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_label_epochs"),
    )
    op.create_index("ix_label_epochs_day", "label_epochs", ["day"])
    op.create_table(
        "label_totals",
        sa.Column("until", UTCDateTime(), nullable=False),
        sa.Column("merchant", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("n_fraud", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("until", "merchant", "category", name="pk_label_totals"),
    )
    postgres = op.get_context().dialect.name == "postgresql"
    op.create_table(
        "label_totals_state",
        sa.Column("until", UTCDateTime(), nullable=False),
        sa.Column("changes", sa.BigInteger(), nullable=False),
        sa.Column(
            "computed_at",
            UTCDateTime(),
            server_default=sa.text("now()") if postgres else sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("until", name="pk_label_totals_state"),
    )
    if not postgres:
        return
    op.execute(_COUNT_LABELS)
    op.execute(_COUNT_KEYS)
    for name, event, table, transition, function in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transition} TABLE AS changed "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for name, _event, table, _transition, _function in _TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute("DROP FUNCTION fd_count_label_changes()")
        op.execute("DROP FUNCTION fd_count_new_transactions()")
    op.drop_table("label_totals_state")
    op.drop_table("label_totals")
    op.drop_index("ix_label_epochs_day", table_name="label_epochs")
    op.drop_table("label_epochs")
