"""Label totals before an instant, kept in the warehouse between runs (PostgreSQL).

The label features of a batch need, per (merchant, category), the effective labels of every
transaction before the batch's label cut-off (:attr:`fraud_core.features.HistoryWindow.label_base_until`,
the last second of a UTC day). Summing them joins all transactions with all labels: about a second
for 1.3 M rows, on every run. The sums stay the same for a whole day of batches, so the first run of
the day stores them (``label_totals`` with its ``label_totals_state`` row) and later runs read 700
rows instead.

A snapshot is valid while nothing it was computed from changed. Triggers count, per UTC day of the
transaction, every write to ``labels`` and every transaction key inserted or deleted, appending a
row per statement and day (``label_epochs``, migration 0004: no writer ever waits on a counter;
a label written by the statement that inserts its transaction key is counted once, by the keys,
migration 0005);
the snapshot writer compacts the rows of the days before its cut-off. A snapshot records the sum
of the counters of the days before its cut-off, read *before* the totals were computed. A later write to one of those days (an analyst
correcting an old label, an import of history) raises the sum, and the next reader recomputes. A
write committed while the totals were being computed may or may not be in them; either way the
recorded sum is lower than the current one, so that snapshot is never used.

Writing a snapshot is an optimisation: it happens in a savepoint, by at most one transaction at a
time (an advisory lock), and any failure there is logged and leaves the caller's transaction as it
was. SQLite (the embedded demo) has no triggers and computes the totals every time.

Why it stays (measured with ``bench/bench_label_totals.py``, 1,000 new transactions per run, on a
shared 2-core machine; min / median of five): the label-stats step takes 0.09 / 0.10 s with a valid
snapshot against 2.5 / 2.9 s without one at today's size (the 1.3 M-row training file), and
0.6 / 0.8 s against 19 / 23 s at ten times the labels. A whole ``etl-and-predict`` run takes
2.1 / 2.6 s with the snapshot and 4.1 / 4.1 s without at today's size, and 3.1 / 3.1 s against
22 / 28 s at ten times: without the snapshot every run at that size would outlast the 20 s
schedule. The triggers cost 0.05 s (today) to 0.33 s (ten times) per 1,000 labels written and
nothing measurable per analyst verdict. The first run of each UTC day, and the first after old
labels change, still pays the full computation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from fraud_core.db.models import LabelEpoch, LabelTotal, LabelTotalsState, table_of
from fraud_core.db.types import as_utc

log = logging.getLogger(__name__)

#: The columns of a totals frame.
TOTALS_COLUMNS = ("merchant", "category", "n", "n_fraud")

#: Snapshots kept (the live flow needs one a day; a backfill over older days adds its own).
KEEP_SNAPSHOTS = 8

#: ``pg_try_advisory_xact_lock`` key of the snapshot writer ("fdlt").
_WRITER_LOCK = 0x66646C74


def _last_day(until: datetime) -> date:
    """The last UTC day with instants before ``until``."""
    return (as_utc(until) - timedelta(microseconds=1)).date()


def changes_before(until: datetime, *, session: Session) -> int:
    """The sum of the change counters of the UTC days with transactions before ``until``."""
    epochs = table_of(LabelEpoch)
    statement = sa.select(sa.func.coalesce(sa.func.sum(epochs.c.changes), 0)).where(epochs.c.day <= _last_day(until))
    return int(session.execute(statement).scalar_one())


def base_totals(until: datetime, *, session: Session, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """The totals of the effective labels of the transactions before ``until``, per (merchant, category).

    Args:
        until: exclusive bound on the transactions' ``event_time`` (aware, or naive UTC).
        session: the caller's session; a snapshot may be written in a savepoint, never committed.
        compute: computes the totals from the tables (a frame with :data:`TOTALS_COLUMNS`).

    Returns:
        :data:`TOTALS_COLUMNS`, from a valid snapshot or from ``compute``.
    """
    if session.get_bind().dialect.name != "postgresql":
        return compute()
    at = as_utc(until)
    changes = changes_before(at, session=session)
    state = table_of(LabelTotalsState)
    recorded = session.execute(sa.select(state.c.changes).where(state.c.until == at)).scalar_one_or_none()
    if recorded is not None and int(recorded) == changes:
        totals = table_of(LabelTotal)
        rows = session.execute(sa.select(*[totals.c[c] for c in TOTALS_COLUMNS]).where(totals.c.until == at)).fetchall()
        return pd.DataFrame(rows, columns=list(TOTALS_COLUMNS))
    computed = compute()
    if len(computed):
        _store(session, at, changes, computed)
    return computed


def _compact_epochs(session: Session, until: datetime) -> None:
    """One counter row per day for the days before ``until`` (the triggers append one per statement).

    Sums stay the same, so no snapshot changes validity; rows appended meanwhile by uncommitted
    writers are not seen here and stay as they are.
    """
    session.execute(
        sa.text(
            "WITH gone AS (DELETE FROM label_epochs WHERE day <= :last_day RETURNING day, changes) "
            "INSERT INTO label_epochs (day, changes) SELECT day, sum(changes) FROM gone GROUP BY day"
        ),
        {"last_day": _last_day(until)},
    )


def _store(session: Session, until: datetime, changes: int, computed: pd.DataFrame) -> None:
    totals, state = table_of(LabelTotal), table_of(LabelTotalsState)
    try:
        with session.begin_nested():
            if not session.execute(sa.select(sa.func.pg_try_advisory_xact_lock(_WRITER_LOCK))).scalar_one():
                return  # another transaction is writing one
            session.execute(sa.delete(totals).where(totals.c.until == until))
            session.execute(sa.delete(state).where(state.c.until == until))
            rows = computed.loc[:, list(TOTALS_COLUMNS)].astype({"n": "int64", "n_fraud": "int64"})
            session.execute(
                sa.insert(totals),
                [
                    {"until": until, "merchant": m, "category": c, "n": int(n), "n_fraud": int(f)}
                    for m, c, n, f in rows.itertuples(index=False, name=None)
                ],
            )
            session.execute(sa.insert(state).values(until=until, changes=changes))
            _compact_epochs(session, until)
            newest = sa.select(state.c.until).order_by(state.c.until.desc()).limit(KEEP_SNAPSHOTS)
            session.execute(sa.delete(state).where(state.c.until.not_in(newest.scalar_subquery())))
            session.execute(sa.delete(totals).where(totals.c.until.not_in(sa.select(state.c.until))))
    except SQLAlchemyError:
        log.warning("label totals before %s not kept (they are recomputed next time)", until, exc_info=True)
