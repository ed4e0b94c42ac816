"""Source cursors: how far the pipeline has read each feed, moved only with the data it covers."""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Session, col

from fraud_core.db.models import (
    SourceCursor,
    table_of,
)
from fraud_core.db.repository._common import (
    upsert_insert,
)
from fraud_core.db.types import utcnow


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Leave this cursor as it is" (``None`` clears a cursor).
UNSET: Final = _Unset()


def get_cursor(source: str, *, session: Session) -> SourceCursor | None:
    """How far the pipeline has read this source, or ``None`` before the first read."""
    return session.get(SourceCursor, source)


def set_cursor(
    source: str,
    *,
    session: Session,
    transactions: str | None | _Unset = UNSET,
    labels: str | None | _Unset = UNSET,
) -> SourceCursor:
    """Move a source's cursors (creating its row the first time).

    Args:
        source: the source name (``settings.source.name``).
        session: the caller's session; not committed here, so the cursor moves only if the data
            it covers is committed with it.
        transactions: the new transactions cursor; leave out to keep the current one.
        labels: the new labels cursor; leave out to keep the current one.

    Returns:
        The cursor row.
    """
    changes: dict[str, Any] = {"updated_at": utcnow()}
    if not isinstance(transactions, _Unset):
        changes["transactions_cursor"] = transactions
    if not isinstance(labels, _Unset):
        changes["labels_cursor"] = labels
    statement = (
        upsert_insert(session, table_of(SourceCursor))
        .values(source=source, **changes)
        .on_conflict_do_update(index_elements=["source"], set_=changes)
    )
    session.execute(statement)
    cursor = session.get(SourceCursor, source)
    assert cursor is not None
    session.refresh(cursor)
    return cursor


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
