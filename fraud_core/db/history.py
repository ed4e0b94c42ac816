"""What the online features read from the warehouse: card history and label totals.

Both functions return exactly the selections of :func:`fraud_core.features.select_card_history` and
:func:`fraud_core.features.select_label_events` (the pure-pandas versions, which the parity tests use
as the reference), so :func:`fraud_core.features.build_features_with_history` gives the values the batch
features give. They take a :class:`fraud_core.features.HistoryWindow` (from
:func:`fraud_core.features.history_window`) and, like every repository function, a keyword-only
``session``; they never commit.

Ordering ties by ``trans_num`` must agree with Python's (code-point) string order: on PostgreSQL the
column's collation is ``C`` (migration 0006), whatever the database's default; SQLite compares bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from fraud_core.db import label_totals
from fraud_core.db.models import (
    CardCategory,
    Transaction,
    table_of,
)
from fraud_core.db.repository.labels import effective_label_join
from fraud_core.db.repository.transactions import ARROW_TYPES, to_canonical_frame
from fraud_core.db.types import as_utc, to_naive_utc
from fraud_core.features import HistoryWindow, empty_label_events, normalise_label_events, select_card_history
from fraud_core.schema import CANONICAL_COLUMNS

_ONE_SECOND = pd.Timedelta(seconds=1)

#: Arrow types of the canonical columns read back through ``COPY`` (text unless typed).
_ARROW_COLUMNS: dict[str, pa.DataType] = {**{c: pa.string() for c in CANONICAL_COLUMNS}, **ARROW_TYPES}


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _window_of(
    window: HistoryWindow | None,
    card_ids: Sequence[str] | None,
    start: datetime | pd.Timestamp | None,
    end: datetime | pd.Timestamp | None,
) -> HistoryWindow:
    if window is not None:
        return window
    if card_ids is None or start is None or end is None:
        raise TypeError("give a HistoryWindow, or card_ids, start and end")
    lo, hi = (pd.Timestamp(as_utc(t)).tz_localize(None) for t in (start, end))
    # The label bounds play no part in the card history.
    return HistoryWindow(tuple(sorted(set(map(str, card_ids)))), lo, hi, label_base_until=lo, label_until=lo)


def card_history_statement(card_ids: Sequence[str], start: datetime, end: datetime, *, dialect: str) -> Any:
    """The one statement behind :func:`fetch_card_history` (exposed for ``EXPLAIN`` and tests).

    It returns a small superset of the selection, every part served by an index:

    * the cards' transactions in the window (``ix_transactions_card_id_event_time``);
    * each (card, category)'s first transaction, when it is before the window: ``card_categories``
      names it, the primary key fetches it;
    * each card's last transaction before the window: one backward index probe per card (``LATERAL
      ... LIMIT 1`` on PostgreSQL; on SQLite, which has no ``LATERAL``, the rows at the card's latest
      instant before the window, ties resolved by :func:`fetch_card_history`).
    """
    table = table_of(Transaction)
    firsts_table = table_of(CardCategory)
    columns = [table.c[c] for c in CANONICAL_COLUMNS]
    cards = list(card_ids)
    if dialect == "postgresql":
        ours = table.c.card_id == sa.any_(sa.bindparam("cards", cards, type_=postgresql.ARRAY(sa.String)))
        first_ours = firsts_table.c.card_id == sa.any_(sa.bindparam("cards", cards, type_=postgresql.ARRAY(sa.String)))
    else:
        ours = table.c.card_id.in_(sa.bindparam("card_ids", cards, expanding=True))
        first_ours = firsts_table.c.card_id.in_(sa.bindparam("card_ids", cards, expanding=True))
    in_window = sa.select(*columns).where(ours, table.c.event_time >= start, table.c.event_time < end)
    named = sa.and_(
        table.c.event_time == firsts_table.c.first_event_time, table.c.trans_num == firsts_table.c.first_trans_num
    )
    earlier = table.alias("earlier")
    if dialect == "postgresql":
        # A primary-key probe per pair: LIMIT keeps the planner from turning it into a hash join
        # over every partition.
        first = sa.select(*columns).where(named).limit(1).lateral("first_use")
        firsts = (
            sa.select(*[first.c[c] for c in CANONICAL_COLUMNS])
            .select_from(firsts_table.join(first, sa.true()))
            .where(first_ours, firsts_table.c.first_event_time < start)
        )
        card = (
            sa.func.unnest(sa.bindparam("cards", cards, type_=postgresql.ARRAY(sa.String)))
            .table_valued("card_id")
            .render_derived(name="card")
        )
        last = (
            sa.select(*[earlier.c[c] for c in CANONICAL_COLUMNS])
            .where(earlier.c.card_id == card.c.card_id, earlier.c.event_time < start)
            .order_by(earlier.c.event_time.desc(), earlier.c.trans_num.desc())
            .limit(1)
            .lateral("last_before")
        )
        before = sa.select(*[last.c[c] for c in CANONICAL_COLUMNS]).select_from(card.join(last, sa.true()))
    else:
        firsts = (
            sa.select(*columns)
            .select_from(firsts_table.join(table, named))
            .where(first_ours, firsts_table.c.first_event_time < start)
        )
        latest = (
            sa.select(sa.func.max(earlier.c.event_time))
            .where(earlier.c.card_id == table.c.card_id, earlier.c.event_time < start)
            .scalar_subquery()
        )
        before = sa.select(*columns).where(ours, table.c.event_time == latest)
    return sa.union_all(in_window, firsts, before)


def _copy_out(session: Session, statement: Any) -> pd.DataFrame:
    """Run a canonical-columns ``SELECT`` on PostgreSQL through ``COPY ... TO STDOUT``, read by Arrow.

    Row objects cost more than the query for tens of thousands of rows; CSV parsed by Arrow, with
    the column types fixed here, does not.
    """
    compiled = statement.compile(dialect=postgresql.dialect(), compile_kwargs={"render_postcompile": True})
    dbapi: Any = session.connection().connection.dbapi_connection
    buffer = io.BytesIO()
    with dbapi.cursor() as cursor:
        query = cursor.mogrify(str(compiled), compiled.params).decode()
        cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)", buffer)
    buffer.seek(0)
    table = pa_csv.read_csv(buffer, convert_options=pa_csv.ConvertOptions(column_types=_ARROW_COLUMNS))
    return table.to_pandas()


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
    window = _window_of(window, card_ids, start, end)
    if not window.card_ids:
        return pd.DataFrame(columns=list(CANONICAL_COLUMNS))
    dialect = _dialect(session)
    statement = card_history_statement(window.card_ids, as_utc(window.start), as_utc(window.end), dialect=dialect)
    if dialect == "postgresql":
        frame = _copy_out(session, statement)
    else:
        result = session.execute(statement)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    if frame.empty:
        return pd.DataFrame(columns=list(CANONICAL_COLUMNS))
    # The query's superset (a row may come twice; ties at the last instant before the window on
    # SQLite), cut to the exact selection by the reference function itself.
    return select_card_history(to_canonical_frame(frame), window)


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
    category), stamped at that instant (on PostgreSQL from a snapshot kept between runs while
    still valid: :mod:`fraud_core.db.label_totals`); later ones, up to ``window.label_until``, one
    row each.
    A transaction's label is its effective label (analyst, then feed, then import).

    Returns:
        A frame with :data:`fraud_core.features.LABEL_EVENT_COLUMNS`.
    """
    base_before = as_utc(window.label_base_until + _ONE_SECOND)
    until_before = as_utc(window.label_until + _ONE_SECOND)
    base_statement, recent_statement = label_stats_statements(base_before, until_before)

    def compute() -> pd.DataFrame:
        return pd.DataFrame(session.execute(base_statement).fetchall(), columns=list(label_totals.TOTALS_COLUMNS))

    base = label_totals.base_totals(base_before, session=session, compute=compute)
    recent = pd.DataFrame(
        session.execute(recent_statement).fetchall(), columns=["event_time", "merchant", "category", "n_fraud"]
    )
    if base.empty and recent.empty:
        return empty_label_events()
    base.insert(0, "event_time", window.label_base_until)
    if not recent.empty:
        recent["event_time"] = to_naive_utc(recent["event_time"])
        recent["n"] = 1
    parts = [p for p in (base, recent) if not p.empty]
    events = pd.concat([p[["event_time", "merchant", "category", "n", "n_fraud"]] for p in parts], ignore_index=True)
    return normalise_label_events(events)


#: Memory PostgreSQL may use per sort or hash in the pipeline's transaction (the server's default
#: is 4 MB): the label totals, when a run computes them, hash-join every transaction and label.
BATCH_WORK_MEM = "128MB"


def tune_for_batch(session: Session) -> None:
    """Set up the current transaction for the feature queries (PostgreSQL only).

    Enough ``work_mem`` for the label totals' hash joins, and no JIT: compiling the label totals'
    plan took about 0.2 s (``EXPLAIN ANALYZE`` on 1.3 M rows) and gains nothing on queries of this
    size.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text(f"SET LOCAL work_mem = '{BATCH_WORK_MEM}'"))
        session.execute(sa.text("SET LOCAL jit = off"))
