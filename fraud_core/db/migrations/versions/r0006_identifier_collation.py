"""Identifiers compare byte by byte: ``trans_num`` and ``card_id`` columns use the ``C`` collation.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

Transaction ids and card tokens are hex strings, not words: their order only has to be stable and
equal to Python's code-point order (the features break ties in it). Under a linguistic collation
(the cluster's default, often ``*.UTF-8``) every index insert, sort and merge on them calls the C
library's ``strcoll``; under ``C`` it is a ``memcmp`` and sorts use abbreviated keys. The bulk load
sorts and inserts these keys several times per row (``transaction_keys``, ``labels``, the
transactions' card index, ``card_categories``). The change rebuilds the indexes on these columns;
the rows stay as they are. PostgreSQL only: SQLite compares bytes already.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, columns): every stored trans_num and card token.
IDENTIFIER_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("transactions", ("trans_num", "card_id")),
    ("transaction_keys", ("trans_num",)),
    ("labels", ("trans_num",)),
    ("predictions", ("trans_num",)),
    ("card_categories", ("card_id", "first_trans_num")),
)


def _set_collation(collation: str) -> None:
    clause = f' COLLATE "{collation}"' if collation else " COLLATE pg_catalog.\"default\""
    for table, columns in IDENTIFIER_COLUMNS:
        changes = ", ".join(f"ALTER COLUMN {c} TYPE varchar(64){clause}" for c in columns)
        op.execute(f"ALTER TABLE {table} {changes}")


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        _set_collation("C")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        _set_collation("")
