"""What the online features read from the warehouse: card history and label totals.

Both functions return exactly the selections of :func:`fraud_core.features.select_card_history` and
:func:`fraud_core.features.select_label_events` (the pure-pandas versions, which the parity tests use
as the reference), so :func:`fraud_core.features.build_online_features` gives the values the batch
features give. They take a :class:`fraud_core.features.HistoryWindow` (from
:func:`fraud_core.features.history_window`) and, like every repository function, a keyword-only
``session``; they never commit.

Ordering ties by ``trans_num`` must agree with Python's (code-point) string order: on PostgreSQL the
comparison uses the ``C`` collation, whatever the database's default; SQLite compares bytes anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from fraud_core.db.models import Transaction, table_of
from fraud_core.db.repository.labels import effective_label_join
from fraud_core.db.types import as_utc
from fraud_core.features import HistoryWindow, empty_label_events, normalise_label_events
from fraud_core.schema import CANONICAL_COLUMNS

_ONE_SECOND = pd.Timedelta(seconds=1)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _ordered_text(column: Any, dialect: str) -> Any:
    return column.collate("C") if dialect == "postgresql" else column


def _window_of(
    window: HistoryWindow | None,
    card_ids: Sequence[str] | None,
    start: datetime | pd.Timestamp | None,
    end: datetime | pd.Timestamp | None,
) -> tuple[list[str], datetime, datetime]:
    if window is not None:
        return list(window.card_ids), as_utc(window.start), as_utc(window.end)
    if card_ids is None or start is None or end is None:
        raise TypeError("give a HistoryWindow, or card_ids, start and end")
    return sorted(set(map(str, card_ids))), as_utc(start), as_utc(end)


def card_history_statement(card_ids: Sequence[str], start: datetime, end: datetime, *, dialect: str) -> Any:
    """The one statement behind :func:`fetch_card_history` (exposed for ``EXPLAIN`` and tests)."""
    table = table_of(Transaction)
    columns = [table.c[c] for c in CANONICAL_COLUMNS]
    ours = table.c.card_id.in_(sa.bindparam("card_ids", list(card_ids), expanding=True))
    trans_num = _ordered_text(table.c.trans_num, dialect)

    in_window = sa.select(*columns).where(ours, table.c.event_time >= start, table.c.event_time < end)
    # Before the window: the card's last transaction ("previous transaction" when the window is
    # empty) and its first in each category ("first use of a category"), in one pass.
    ranked = (
        sa.select(
            *columns,
            sa.func.row_number()
            .over(partition_by=table.c.card_id, order_by=(table.c.event_time.desc(), trans_num.desc()))
            .label("rn_last"),
            sa.func.row_number()
            .over(partition_by=(table.c.card_id, table.c.category), order_by=(table.c.event_time, trans_num))
            .label("rn_first"),
        )
        .where(ours, table.c.event_time < start)
        .subquery("before_window")
    )
    before = sa.select(*[ranked.c[c] for c in CANONICAL_COLUMNS]).where(
        sa.or_(ranked.c.rn_last == 1, ranked.c.rn_first == 1)
    )
    return sa.union_all(in_window, before)


def fetch_card_history(
    window: HistoryWindow | None = None,
    *,
    session: Session,
    card_ids: Sequence[str] | None = None,
    start: datetime | pd.Timestamp | None = None,
    end: datetime | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The history a batch's cards need for exact features, with one query.

    For each card: its transactions with ``start <= event_time < end``, its last transaction before
    ``start`` and its first transaction in each category before ``start``.

    Args:
        window: from :func:`fraud_core.features.history_window` (or give the three bounds).
        session: the caller's session.
        card_ids: the cards (without ``window``).
        start: inclusive lower bound of the window (without ``window``; naive means UTC).
        end: exclusive upper bound (without ``window``).

    Returns:
        Canonical frame (reader dtypes), ordered by ``(card_id, event_time, trans_num)``.
    """
    from fraud_core.db.repository.transactions import to_canonical_frame

    cards, lo, hi = _window_of(window, card_ids, start, end)
    if not cards:
        return pd.DataFrame(columns=list(CANONICAL_COLUMNS))
    statement = card_history_statement(cards, lo, hi, dialect=_dialect(session))
    result = session.execute(statement)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    if frame.empty:
        return pd.DataFrame(columns=list(CANONICAL_COLUMNS))
    frame = to_canonical_frame(frame).drop_duplicates("trans_num")
    return frame.sort_values(["card_id", "event_time", "trans_num"], kind="stable").reset_index(drop=True)


def label_stats_statements(base_before: datetime, until_before: datetime) -> tuple[Any, Any]:
    """The statements behind :func:`fetch_label_stats`: totals, then individual recent labels."""
    table = table_of(Transaction)
    joined, is_fraud = effective_label_join(table, table.c.trans_num)
    fraud = sa.case((is_fraud.is_(True), 1), else_=0)
    base = (
        sa.select(
            table.c.merchant,
            table.c.category,
            sa.func.count().label("n"),
            sa.func.sum(fraud).label("n_fraud"),
        )
        .select_from(joined)
        .where(table.c.event_time < base_before, is_fraud.is_not(None))
        .group_by(table.c.merchant, table.c.category)
    )
    recent = (
        sa.select(table.c.event_time, table.c.merchant, table.c.category, fraud.label("n_fraud"))
        .select_from(joined)
        .where(table.c.event_time >= base_before, table.c.event_time < until_before, is_fraud.is_not(None))
    )
    return base, recent


def fetch_label_stats(window: HistoryWindow, *, session: Session) -> pd.DataFrame:
    """The labels the batch's label features may use, as label events.

    Labels of transactions up to ``window.label_base_until`` come as totals per (merchant,
    category), stamped at that instant; later ones, up to ``window.label_until``, one row each.
    A transaction's label is its effective label (analyst, then feed, then import).

    Returns:
        A frame with :data:`fraud_core.features.LABEL_EVENT_COLUMNS`.
    """
    base_before = as_utc(window.label_base_until + _ONE_SECOND)
    until_before = as_utc(window.label_until + _ONE_SECOND)
    base_statement, recent_statement = label_stats_statements(base_before, until_before)
    base = pd.DataFrame(session.execute(base_statement).fetchall(), columns=["merchant", "category", "n", "n_fraud"])
    recent = pd.DataFrame(
        session.execute(recent_statement).fetchall(), columns=["event_time", "merchant", "category", "n_fraud"]
    )
    if base.empty and recent.empty:
        return empty_label_events()
    base.insert(0, "event_time", window.label_base_until)
    if not recent.empty:
        from fraud_core.db.types import to_naive_utc

        recent["event_time"] = to_naive_utc(recent["event_time"])
        recent["n"] = 1
    parts = [p for p in (base, recent) if not p.empty]
    events = pd.concat([p[["event_time", "merchant", "category", "n", "n_fraud"]] for p in parts], ignore_index=True)
    return normalise_label_events(events)
