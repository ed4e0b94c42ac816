"""Labels stored in the same statement as their transactions are counted once, by the keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

The label-change counter of migration 0004 joins every written label with ``transaction_keys`` to
find its transaction's day. For a label written by the statement that also inserts its transaction
key (a bulk import), the keys trigger of that statement has already counted the same day, so the
counters change either way and the label-totals snapshot is invalidated exactly as before. The
loader says so for that one statement with the transaction-local setting
``fraud_detector.labels_counted_with_keys`` (see
:func:`fraud_core.db.repository.transactions.load_transactions`); every other write counts as
before. PostgreSQL only: SQLite has no triggers.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What 0004's function does: one counter row per day of the changed labels' transactions.
_COUNT = """
  INSERT INTO label_epochs (day, changes)
  SELECT (k.event_time AT TIME ZONE 'UTC')::date, count(*)
    FROM changed c JOIN transaction_keys k ON k.trans_num = c.trans_num
   GROUP BY 1;
  RETURN NULL;
"""
# Set (SET LOCAL) only around a statement that inserts these labels' transaction keys too.
_SKIP = """
  IF current_setting('fraud_detector.labels_counted_with_keys', true) = 'on' THEN
    RETURN NULL;
  END IF;
"""


def _function(body: str) -> str:
    return f"CREATE OR REPLACE FUNCTION fd_count_label_changes() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN{body}END $$"


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_function(_SKIP + _COUNT))


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_function(_COUNT))
