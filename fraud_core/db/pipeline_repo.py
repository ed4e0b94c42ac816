"""Repository functions the live pipeline needs beyond :mod:`fraud_core.db.repository`.

Same rules: a keyword-only ``session``, never a commit.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import Session, col

from fraud_core.db.models import Prediction, SourceCursor, Transaction, TransactionKey, table_of
from fraud_core.db.repository._common import upsert_insert


class CursorMovedError(RuntimeError):
    """The stored cursor is not where this run started reading: another run stored that range."""


def lock_cursor(source: str, *, session: Session) -> SourceCursor:
    """The source's cursor row, locked until the caller's transaction ends (created if missing).

    Two pipeline runs that somehow overlap serialise here: the second waits for the first to
    commit, then sees the cursor it moved.
    """
    session.execute(
        upsert_insert(session, table_of(SourceCursor))
        .values(source=source)
        .on_conflict_do_nothing(index_elements=["source"])
    )
    statement = sa.select(SourceCursor).where(col(SourceCursor.source) == source).with_for_update()
    cursor = session.execute(statement.execution_options(populate_existing=True)).scalar_one()
    return cursor


def check_cursor(source: str, expected: str | None, *, session: Session, feed: str = "transactions") -> SourceCursor:
    """Lock the cursor and make sure it still says ``expected``.

    Raises:
        CursorMovedError: another run moved it since this run read it.
    """
    cursor = lock_cursor(source, session=session)
    stored = cursor.transactions_cursor if feed == "transactions" else cursor.labels_cursor
    if stored != expected:
        raise CursorMovedError(
            f"the {feed} cursor of {source!r} moved from {expected!r} to {stored!r} while this run read the "
            "source; another run stored that range (runs must not overlap)"
        )
    return cursor


#: Memory PostgreSQL may use per sort or hash in the pipeline's transaction: the card-history
#: query sorts a whole history window, which at the server's default (4 MB) spills to disk.
BATCH_WORK_MEM = "128MB"


def tune_for_batch(session: Session) -> None:
    """Set up the current transaction for the feature queries (PostgreSQL only).

    Enough ``work_mem`` for the label totals' hash joins, and no JIT: compiling the plans costs
    a few hundred milliseconds a run and gains nothing on queries of this size.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text(f"SET LOCAL work_mem = '{BATCH_WORK_MEM}'"))
        session.execute(sa.text("SET LOCAL jit = off"))


def unscored(trans_nums: Sequence[str], *, session: Session, role: str = "champion") -> list[str]:
    """Those of ``trans_nums`` that no model version has scored yet in ``role`` (input order)."""
    wanted = list(dict.fromkeys(trans_nums))
    if not wanted:
        return []
    pred = table_of(Prediction)
    scored: set[str] = set()
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        rows = session.execute(
            sa.select(pred.c.trans_num).where(pred.c.trans_num.in_(chunk), pred.c.role == role).distinct()
        )
        scored.update(r[0] for r in rows)
    return [t for t in wanted if t not in scored]


def count_feed_transactions(source: str, *, session: Session) -> int:
    """How many transactions a source stored (tests and the run summary)."""
    tx = table_of(Transaction)
    return int(session.execute(sa.select(sa.func.count()).select_from(tx).where(tx.c.source == source)).scalar_one())


def stored_keys(trans_nums: Sequence[str], *, session: Session) -> set[str]:
    """Which of ``trans_nums`` are stored (any source)."""
    keys = table_of(TransactionKey)
    found: set[str] = set()
    wanted = list(dict.fromkeys(trans_nums))
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        found.update(r[0] for r in session.execute(sa.select(keys.c.trans_num).where(keys.c.trans_num.in_(chunk))))
    return found
