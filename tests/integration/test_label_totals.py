"""The change counters behind the label-totals snapshot: writers never wait, compaction keeps sums.

Real PostgreSQL: two sessions write labels of the same day at once (the second must not wait for
the first's commit), and a snapshot write compacts the counters of past days without changing any
sum. The snapshot's validity itself is tested with the history parity
(``test_history_parity.py``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.db.label_totals import changes_before
from fraud_core.db.repository import upsert_labels
from fraud_core.db.repository.transactions import load_transactions

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "fraud_sample.parquet"


@pytest.fixture
def stored(clean_db: Engine) -> pd.DataFrame:
    from fraud_core.data import load_canonical

    frame, _ = load_canonical(SAMPLE, token_key="label-totals-key")
    frame = frame.sort_values(["event_time", "trans_num"], kind="stable").head(3000).reset_index(drop=True)
    # Two loads of interleaved rows: several counter rows per day.
    with Session(clean_db) as session:
        for part in (frame.iloc[0::2], frame.iloc[1::2]):
            load_transactions(part, session=session, source="import", label_origin="import")
            session.commit()
    return frame


def _rows_per_day(engine: Engine) -> pd.Series:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT day, count(*) FROM label_epochs GROUP BY day")).fetchall()
    return pd.Series({r[0]: r[1] for r in rows})


@pytest.mark.integration
def test_two_writers_of_the_same_day_do_not_wait_for_each_other(clean_db: Engine, stored: pd.DataFrame) -> None:
    day = stored["event_time"].dt.normalize().iloc[0]
    same_day = stored[stored["event_time"].dt.normalize() == day]
    first, second = same_day.iloc[[0]], same_day.iloc[[1]]
    flip = {"is_fraud": lambda f: 1 - f["is_fraud"]}
    with Session(clean_db) as a, Session(clean_db) as b:
        upsert_labels(first[["trans_num", "is_fraud"]].assign(**flip), session=a, origin="analyst")
        # a has not committed; b writes a label of the same day and must not queue behind a.
        b.execute(sa.text("SET lock_timeout = '2s'"))
        upsert_labels(second[["trans_num", "is_fraud"]].assign(**flip), session=b, origin="analyst")
        b.commit()
        a.commit()
    with Session(clean_db) as session:
        until = (day + pd.Timedelta(days=1)).to_pydatetime()
        before = (day).to_pydatetime()
        assert (
            changes_before(until, session=session) - changes_before(before, session=session) == len(same_day) + 2
        )  # each transaction once (its import label came in the same statement), then the two analyst labels


@pytest.mark.integration
def test_labels_of_stored_transactions_are_counted_when_imported_again(clean_db: Engine, stored: pd.DataFrame) -> None:
    """Only labels written with their own new transaction keys leave the counting to the keys."""
    end = (stored["event_time"].max() + pd.Timedelta(days=1)).to_pydatetime()
    again = stored.copy()
    flipped = again.index[:5]
    again.loc[flipped, "is_fraud"] = 1 - again.loc[flipped, "is_fraud"]
    new_row = stored.iloc[[-1]].assign(trans_num="f" * 32, is_fraud=1)
    with Session(clean_db) as session:
        before = changes_before(end, session=session)
        result = load_transactions(
            pd.concat([again, new_row], ignore_index=True), session=session, source="import", label_origin="import"
        )
        assert result.inserted == ["f" * 32] and result.labels == len(flipped) + 1
        # The 5 changed labels of stored transactions, then the new transaction (its label with it).
        assert changes_before(end, session=session) == before + len(flipped) + 1
        # Later label writes in the same database transaction are counted again.
        upsert_labels(stored.iloc[[-2]][["trans_num"]].assign(is_fraud=1), session=session, origin="analyst")
        assert changes_before(end, session=session) == before + len(flipped) + 2


@pytest.mark.integration
def test_a_snapshot_compacts_past_counters_and_keeps_their_sums(clean_db: Engine, stored: pd.DataFrame) -> None:
    from fraud_core.db.history import fetch_label_stats
    from fraud_core.features import history_window

    assert (_rows_per_day(clean_db) > 1).all()
    new = stored.iloc[[-1]]
    window = history_window(new, label_delay_days=1.0)
    cut = window.label_base_until + pd.Timedelta(seconds=1)
    with Session(clean_db) as session:
        sums = {d: changes_before(d, session=session) for d in pd.date_range(stored["event_time"].min(), cut, freq="D")}
        fetch_label_stats(window, session=session)  # computes and stores the snapshot
        session.commit()
    rows = _rows_per_day(clean_db)
    past = rows[[pd.Timestamp(d) < cut for d in rows.index]]
    assert len(past) > 0 and (past == 1).all()
    assert (rows[[pd.Timestamp(d) >= cut for d in rows.index]] > 1).all()  # later days left alone
    with Session(clean_db) as session:
        assert {d: changes_before(d, session=session) for d in sums} == sums
