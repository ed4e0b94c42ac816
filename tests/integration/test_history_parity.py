"""The warehouse queries return what the pandas selections return, and the features match the batch.

Loads the bundled sample (plus a few hand-made edge cases: ties in time, mixed-case ``trans_num``,
a card quiet for 45 days, an analyst label overriding the import label) into a real PostgreSQL
database, then for several batches compares :func:`fetch_card_history` / :func:`fetch_label_stats`
with :func:`select_card_history` / :func:`select_label_events` and the online features with the batch
features (1e-9). The same check runs on SQLite with a few cards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.db.history import fetch_card_history, fetch_label_stats
from fraud_core.features import (
    NUMERIC_FEATURES,
    build_features,
    build_features_with_history,
    history_window,
    label_events_from_frame,
    select_card_history,
    select_label_events,
)

DELAY_DAYS = 7.0
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "fraud_sample.parquet"


def _edge_cases(template: pd.Series) -> pd.DataFrame:
    """A card with same-second transactions whose trans_num differ in case and a 45-day silence."""
    rows = []
    specs = [
        ("EDGE-b", "2020-01-10 10:00:00", 12.0, "travel"),
        ("EDGE-B", "2020-01-10 10:00:00", 30.0, "home"),  # 'B' < 'b' in code-point order
        ("EDGE-a", "2020-01-10 10:00:00", 7.5, "travel"),
        ("edge-z", "2020-02-24 09:00:00", 900.0, "misc_net"),
        ("edge-y", "2020-02-24 09:00:00", 15.0, "travel"),
        ("EDGE-c", "2020-02-24 09:30:00", 20.0, "home"),
    ]
    for i, (trans_num, when, amount, category) in enumerate(specs):
        row = template.copy()
        row["trans_num"] = trans_num
        row["card_id"] = "edge-card"
        row["card_last4"] = "0000"
        row["event_time"] = pd.Timestamp(when)
        row["amount"] = amount
        row["category"] = category
        row["merch_long"] = -100.0 + i
        row["is_fraud"] = 1 if trans_num == "edge-z" else 0
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["event_time"] = frame["event_time"].astype("datetime64[us]")
    return frame


def _load(session: Session, frame: pd.DataFrame) -> None:
    from fraud_core.db.repository import upsert_labels
    from fraud_core.db.repository.transactions import load_transactions

    # Out of time order, in three interleaved parts, then all again: card_categories must still
    # name each pair's first transaction (ties by code point), and nothing is stored twice.
    for part in (frame.iloc[2::3], frame.iloc[0::3], frame.iloc[1::3], frame):
        load_transactions(part, session=session, source="import", label_origin="import")
    _assert_first_categories(session, frame)
    # An analyst overrides two import labels: the effective label is the analyst's.
    flipped = frame.iloc[[100, 2000]][["trans_num", "is_fraud"]].copy()
    flipped["is_fraud"] = 1 - flipped["is_fraud"]
    upsert_labels(flipped, session=session, origin="analyst", analyst="tester")
    session.commit()


def _assert_first_categories(session: Session, frame: pd.DataFrame) -> None:
    import sqlalchemy as sa

    rows = session.execute(
        sa.text("SELECT card_id, category, first_event_time, first_trans_num FROM card_categories")
    ).fetchall()
    naive = [pd.Timestamp(r[2]) for r in rows]
    stored = {(r[0], r[1]): (t.tz_localize(None) if t.tzinfo else t, r[3]) for r, t in zip(rows, naive, strict=True)}
    # pandas orders strings by code point, as the table must.
    ordered = frame.sort_values(["event_time", "trans_num"], kind="stable")
    firsts = ordered.drop_duplicates(["card_id", "category"], keep="first")
    expected = {(r.card_id, r.category): (pd.Timestamp(r.event_time), r.trans_num) for r in firsts.itertuples()}
    assert stored == expected
    assert stored[("edge-card", "travel")][1] == "EDGE-a"  # same second as EDGE-b, first in code-point order


def _effective(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.loc[out.index[[100, 2000]], "is_fraud"] = 1 - out.loc[out.index[[100, 2000]], "is_fraud"]
    return out


def _assert_same_rows(sql: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert list(sql["trans_num"]) == list(reference["trans_num"])
    for column in ("card_id", "category", "merchant"):
        assert list(sql[column]) == list(reference[column])
    assert (sql["event_time"].to_numpy() == reference["event_time"].to_numpy()).all()
    np.testing.assert_allclose(sql["amount"].to_numpy(float), reference["amount"].to_numpy(float), rtol=0, atol=0)


def _assert_same_label_totals(sql: pd.DataFrame, reference: pd.DataFrame) -> None:
    key = ["event_time", "merchant", "category"]

    def totals(events: pd.DataFrame) -> pd.DataFrame:
        return events.groupby(key, as_index=False)[["n", "n_fraud"]].sum().sort_values(key).reset_index(drop=True)

    pd.testing.assert_frame_equal(totals(sql), totals(reference), check_dtype=False)


def _assert_same_features(online: pd.DataFrame, batch: pd.DataFrame) -> None:
    a = online[list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64)
    b = batch[list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64)
    assert (np.isnan(a) == np.isnan(b)).all()
    both = ~np.isnan(a)
    assert np.abs(a[both] - b[both]).max(initial=0.0) <= 1e-9
    assert (online["category"].to_numpy() == batch["category"].to_numpy()).all()


def _check_batches(session: Session, frame: pd.DataFrame, batches: list[pd.DataFrame]) -> None:
    effective = _effective(frame)
    batch_features = build_features(effective, label_events_from_frame(effective), label_delay_days=DELAY_DAYS)
    for new in batches:
        window = history_window(new, label_delay_days=DELAY_DAYS)
        history = fetch_card_history(window, session=session)
        _assert_same_rows(history, select_card_history(effective, window))
        labels = fetch_label_stats(window, session=session)
        _assert_same_label_totals(labels, select_label_events(effective, window))
        online = build_features_with_history(new.drop(columns="is_fraud"), history, labels, label_delay_days=DELAY_DAYS)
        _assert_same_features(online, batch_features.loc[new.index])


@pytest.fixture(scope="module")
def sample_frame() -> pd.DataFrame:
    from fraud_core.data import load_canonical

    frame, _ = load_canonical(SAMPLE, token_key="history-parity-key")
    frame = pd.concat([frame, _edge_cases(frame.iloc[0])], ignore_index=True)
    return frame.sort_values(["event_time", "trans_num"], kind="stable").reset_index(drop=True)


def _batches(frame: pd.DataFrame) -> list[pd.DataFrame]:
    times = frame["event_time"]
    out = []
    spans = [(times.iloc[int(len(frame) * q)], pd.Timedelta(hours=6)) for q in (0.2, 0.55, 0.9)]
    spans.append((pd.Timestamp("2020-02-24 08:00"), pd.Timedelta(hours=2)))  # the edge card's ties
    for t0, span in spans:
        chosen = frame[(times >= t0) & (times < t0 + span)]
        assert len(chosen) > 0
        out.append(chosen)
    out.append(frame.loc[[frame.index[len(frame) // 2]]])  # a single transaction, as /predict sends
    return out


@pytest.mark.integration
def test_postgres_history_and_features_match_the_batch(db_session: Session, sample_frame: pd.DataFrame) -> None:
    _load(db_session, sample_frame)
    _check_batches(db_session, sample_frame, _batches(sample_frame))


@pytest.fixture
def sqlite_session(sqlite_engine: Engine) -> Iterator[Session]:
    with Session(sqlite_engine) as session:
        yield session


@pytest.mark.integration
def test_sqlite_history_and_features_match_the_batch(sqlite_session: Session, sample_frame: pd.DataFrame) -> None:
    cards = [*sorted(sample_frame["card_id"].unique())[:4], "edge-card"]
    small = sample_frame[sample_frame["card_id"].isin(cards)].reset_index(drop=True)
    _load(sqlite_session, small)
    _check_batches(sqlite_session, small, _batches(small))


@pytest.mark.integration
def test_postgres_orders_trans_num_by_code_point_whatever_the_database_collation(
    pg_database_factory: Callable[..., str], sample_frame: pd.DataFrame
) -> None:
    """Ties in event time are broken by code point (Python's order) under a linguistic default too.

    The database's default collation is ICU English, where ``'a1' < 'B1'``; by code point
    ``'B1' < 'a1'``. Two transactions of one card in the same second: the card's first in the
    category is ``B1`` (``card_categories``) and its last before a window ``a1`` (the one-row reader).
    """
    import sqlalchemy as sa

    from fraud_core.db import make_engine
    from fraud_core.db.repository.transactions import load_transactions
    from fraud_core.online.history import CardHistoryReader

    url = pg_database_factory(options="TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 'a1' < 'B1'")).scalar_one()  # linguistic: can fail
        when = pd.Timestamp("2020-03-01 10:00:00")
        tied = sample_frame.iloc[[0, 0]].assign(trans_num=["a1", "B1"], card_id="tie-card", event_time=when)
        with Session(engine) as session:
            load_transactions(tied, session=session, source="import")
            session.commit()
            history = fetch_card_history(
                session=session,
                card_ids=["tie-card"],
                start=when + pd.Timedelta(days=1),
                end=when + pd.Timedelta(days=2),
            )
            first = session.execute(sa.text("SELECT first_trans_num FROM card_categories")).scalar_one()
        assert first == "B1"
        assert history["trans_num"].tolist() == ["B1", "a1"]  # the first in the category, the last before
        reader = CardHistoryReader(engine)
        try:
            later = {"card_id": "tie-card", "event_time": (when + pd.Timedelta(days=40)).to_pydatetime()}
            assert reader.read({**later, "category": "none"}).trans_num == ["a1"]  # type: ignore[typeddict-item]
        finally:
            reader.close()
    finally:
        engine.dispose()


def _label_totals_of(events: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    base = events[events["event_time"] == at]
    return base.set_index(["merchant", "category"])[["n", "n_fraud"]].sort_index()


@pytest.mark.integration
def test_postgres_label_totals_snapshot_is_used_until_an_older_label_changes(
    db_session: Session, sample_frame: pd.DataFrame
) -> None:
    import sqlalchemy as sa

    from fraud_core.db.repository import upsert_labels

    _load(db_session, sample_frame)
    effective = _effective(sample_frame)
    batch = _batches(sample_frame)[1]
    window = history_window(batch, label_delay_days=DELAY_DAYS)
    cut = window.label_base_until
    assert cut == cut.floor("D") + pd.Timedelta(hours=23, minutes=59, seconds=59)  # a day's last second

    def fetch() -> pd.DataFrame:
        return _label_totals_of(fetch_label_stats(window, session=db_session), cut)

    def reference() -> pd.DataFrame:
        return _label_totals_of(select_label_events(effective, window), cut)

    pd.testing.assert_frame_equal(fetch(), reference(), check_dtype=False)
    assert db_session.execute(sa.text("SELECT count(*) FROM label_totals_state")).scalar_one() == 1

    # The next batch of the same day reads the snapshot: tampering with it shows.
    db_session.execute(sa.text("UPDATE label_totals SET n = n + 1000"))
    assert (fetch()["n"] - reference()["n"] == 1000).all()

    # A label of a transaction after the cut-off leaves the snapshot valid ...
    times = effective["event_time"]
    later = effective[times > cut + pd.Timedelta(days=2)].iloc[[0]][["trans_num", "is_fraud"]]
    upsert_labels(later.assign(is_fraud=1 - later["is_fraud"]), session=db_session, origin="feed")
    assert (fetch()["n"] - reference()["n"] == 1000).all()

    # ... an analyst correcting an older one does not: the totals are recomputed, exactly.
    older = effective[times < cut - pd.Timedelta(days=3)].iloc[[5]]
    upsert_labels(older[["trans_num"]].assign(is_fraud=1 - older["is_fraud"]), session=db_session, origin="analyst")
    effective.loc[older.index, "is_fraud"] = 1 - older["is_fraud"]
    pd.testing.assert_frame_equal(fetch(), reference(), check_dtype=False)

    # A late transaction before the cut-off, stored with its label, counts as a change too.
    from fraud_core.db.repository.transactions import load_transactions

    db_session.execute(sa.text("UPDATE label_totals SET n = n + 1000"))
    late = effective.iloc[[10]].assign(trans_num="late-arrival", is_fraud=1)
    load_transactions(late, session=db_session, source="import", label_origin="import")
    effective = pd.concat([effective, late], ignore_index=True)
    pd.testing.assert_frame_equal(fetch(), reference(), check_dtype=False)
