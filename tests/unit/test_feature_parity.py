"""Every declared feature has the same value on every path (to 1e-9, NaN for NaN).

Three ways compute the features of a transaction: the reference over a whole file
(:func:`build_features`), the reference over a history window as the warehouse selects it
(:func:`build_features_with_history` with :func:`select_card_history`, :func:`select_label_events`;
the SQL version of that selection is checked against PostgreSQL in
``tests/integration/test_history_parity.py``), and the one-row twin of ``/predict``
(:func:`fraud_core.online.features.features_one`). The tests below enumerate
:data:`fraud_core.features.FEATURES`: a feature declared but written in one implementation only, or
written but not declared, fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_core.features import (
    FEATURE_COLUMNS,
    FEATURES,
    NUMERIC_FEATURES,
    Feature,
    build_features,
    build_features_with_history,
    history_window,
    label_events_from_frame,
    select_card_history,
    select_label_events,
)

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "fraud_sample.parquet"
DELAY_DAYS = 7.0


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    from fraud_core.data import load_canonical

    frame, _ = load_canonical(SAMPLE, token_key="parity-test-token-key")
    return frame


@pytest.fixture(scope="module")
def sample_batch_features(sample: pd.DataFrame) -> pd.DataFrame:
    return build_features(sample, label_events_from_frame(sample), label_delay_days=DELAY_DAYS)


def assert_same_features(online: pd.DataFrame, batch: pd.DataFrame) -> None:
    assert list(online.columns) == list(FEATURE_COLUMNS)
    assert list(online.index) == list(batch.index)
    a = online[list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64)
    b = batch[list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64)
    assert (np.isnan(a) == np.isnan(b)).all(), "a feature is missing on one side only"
    both = ~np.isnan(a)
    assert np.abs(a[both] - b[both]).max(initial=0.0) <= 1e-9
    assert (online["category"].to_numpy() == batch["category"].to_numpy()).all()


def online_for(new: pd.DataFrame, warehouse: pd.DataFrame) -> pd.DataFrame:
    window = history_window(new, label_delay_days=DELAY_DAYS)
    history = select_card_history(warehouse, window)
    events = select_label_events(warehouse, window)
    return build_features_with_history(new.drop(columns="is_fraud"), history, events, label_delay_days=DELAY_DAYS)


@pytest.mark.parametrize(
    ("start", "hours"),
    [
        ("2019-03-10 08:00:00", 1),
        ("2019-12-24 18:00:00", 30),
        ("2020-06-21 12:14:00", 72),
        ("2020-11-02 00:00:00", 24 * 7),
    ],
)
def test_online_equals_batch_on_sample_batches(
    sample: pd.DataFrame, sample_batch_features: pd.DataFrame, start: str, hours: int
) -> None:
    t0 = pd.Timestamp(start)
    new = sample[(sample["event_time"] >= t0) & (sample["event_time"] < t0 + pd.Timedelta(hours=hours))]
    assert len(new) > 0
    # The warehouse already holds the batch and later rows: the window must ignore both.
    assert_same_features(online_for(new, sample), sample_batch_features.loc[new.index])
    # The warehouse holds only the past.
    past = sample[sample["event_time"] < t0]
    assert_same_features(online_for(new, past), sample_batch_features.loc[new.index])


def test_online_equals_batch_row_by_row(sample: pd.DataFrame, sample_batch_features: pd.DataFrame) -> None:
    rows = sample.sample(25, random_state=7)
    for index in rows.index:
        new = sample.loc[[index]]
        assert_same_features(online_for(new, sample), sample_batch_features.loc[[index]])


def test_history_reaches_before_the_window_when_it_must() -> None:
    """A card quiet for 45 days: 'previous transaction' and 'new category' come from before start."""
    rows = [
        ("q0", "2019-12-01 09:00:00", 40.0, "home", 0.0),
        ("q1", "2020-01-01 09:00:00", 12.5, "travel", 1.0),
        # A tie: q2 > q1, so q2 is the previous transaction; it is not its category's first.
        ("q2", "2020-01-01 09:00:00", 13.0, "home", 2.0),
        ("q3", "2020-02-15 09:00:00", 700.0, "travel", 3.0),
        ("q4", "2020-02-15 09:00:00", 5.0, "kids_pets", 4.0),
        ("q5", "2020-02-15 10:00:00", 6.0, "home", 5.0),
    ]
    frame = pd.DataFrame(
        {
            "trans_num": [r[0] for r in rows],
            "card_id": "Q",
            "event_time": pd.to_datetime([r[1] for r in rows]).astype("datetime64[us]"),
            "amount": [r[2] for r in rows],
            "category": [r[3] for r in rows],
            "merchant": "m",
            "merch_lat": 10.0,
            "merch_long": [r[4] for r in rows],
            "lat": 10.0,
            "long": 0.0,
            "dob": pd.Timestamp("1970-05-05"),
            "is_fraud": [0, 1, 0, 0, 0, 1],
        }
    )
    frame["dob"] = frame["dob"].astype("datetime64[us]")
    batch = build_features(frame, label_events_from_frame(frame), label_delay_days=DELAY_DAYS)
    new = frame.iloc[3:]
    online = online_for(new, frame)
    assert_same_features(online, batch.iloc[3:])
    assert online["secs_since_prev"].iloc[0] == 45 * 86400.0
    assert online["prev_merchant_km"].iloc[0] == pytest.approx(batch["prev_merchant_km"].iloc[3])
    assert online["prev_merchant_km"].iloc[0] > 0  # measured from q2's merchant, not q1's
    assert list(online["is_new_category"]) == [0.0, 1.0, 0.0]


def _random_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    # Coarse times (whole minutes over 120 days) make ties within a card common.
    minutes = rng.integers(0, 120 * 24 * 60, size=n)
    return pd.DataFrame(
        {
            "trans_num": [f"t{i:05d}" for i in rng.permutation(n)],
            "card_id": rng.choice(["c1", "c2", "c3", "c4"], size=n),
            "event_time": (pd.Timestamp("2020-01-01") + pd.to_timedelta(minutes * 60, unit="s")).astype(
                "datetime64[us]"
            ),
            "amount": np.round(rng.lognormal(3.5, 1.5, size=n), 2),
            "category": rng.choice(["travel", "home", "misc_net"], size=n),
            "merchant": rng.choice(["m1", "m2", "m3", "m4", "m5"], size=n),
            "merch_lat": rng.uniform(30, 45, size=n),
            "merch_long": rng.uniform(-120, -70, size=n),
            "lat": 40.0,
            "long": -100.0,
            "dob": pd.Timestamp("1980-02-29"),
            "is_fraud": (rng.random(n) < 0.05).astype("int8"),
        }
    )


@pytest.mark.parametrize("random_state", range(6))
def test_online_equals_batch_on_random_frames_with_ties(random_state: int) -> None:
    rng = np.random.default_rng(random_state)
    frame = _random_frame(rng, 3000)
    batch = build_features(frame, label_events_from_frame(frame), label_delay_days=DELAY_DAYS)
    times = frame["event_time"].sort_values()
    for _ in range(5):
        t0 = times.iloc[rng.integers(0, len(times))]
        span = pd.Timedelta(minutes=int(rng.integers(1, 5 * 24 * 60)))
        new = frame[(frame["event_time"] >= t0) & (frame["event_time"] <= t0 + span)]
        assert_same_features(online_for(new, frame), batch.loc[new.index])


def test_online_without_history_or_labels() -> None:
    frame = _random_frame(np.random.default_rng(11), 50)
    online = build_features_with_history(
        frame.drop(columns="is_fraud"), frame.iloc[0:0], None, label_delay_days=DELAY_DAYS
    )
    assert_same_features(online, build_features(frame, None, label_delay_days=DELAY_DAYS))
    assert online["merchant_fraud_rate"].isna().all()


@pytest.fixture(scope="module")
def one_row_features(sample: pd.DataFrame) -> pd.DataFrame:
    """``features_one`` for 300 transactions of the sample (a card's first ones and ties included)."""
    from fraud_core.online.features import LabelIndex, features_one, history_from_frame

    frame = sample.sort_values(["event_time", "trans_num"])
    labels = LabelIndex(label_events_from_frame(frame))
    by_card = dict(tuple(frame.groupby("card_id")))
    picks = list(frame.sample(280, random_state=3).index)
    picks += list(frame.groupby("card_id").head(1).index[:10])
    picks += list(frame[frame.duplicated(["card_id", "event_time"], keep=False)].index[:10])
    rows = {}
    for i in dict.fromkeys(picks):
        row = {c: frame.at[i, c] for c in frame.columns}
        row["event_time"] = pd.Timestamp(row["event_time"]).to_pydatetime()
        row["dob"] = pd.Timestamp(row["dob"]).to_pydatetime()
        rows[i] = features_one(
            row, history_from_frame(by_card[row["card_id"]], row), labels, label_delay_days=DELAY_DAYS
        )
    return pd.DataFrame.from_dict(rows, orient="index")[list(FEATURE_COLUMNS)]


@pytest.mark.parametrize("feature", FEATURES, ids=[f.name for f in FEATURES])
def test_each_declared_feature_is_equal_on_every_path(
    feature: Feature, sample: pd.DataFrame, sample_batch_features: pd.DataFrame, one_row_features: pd.DataFrame
) -> None:
    picked = one_row_features.index
    batch = sample_batch_features.loc[picked, feature.name]
    window = online_for(sample.loc[picked], sample)[feature.name]
    for other in (one_row_features[feature.name], window):
        if feature.categorical:
            assert (other.to_numpy() == batch.to_numpy()).all()
            continue
        a, b = other.to_numpy(dtype=np.float64), batch.to_numpy(dtype=np.float64)
        assert (np.isnan(a) == np.isnan(b)).all(), f"{feature.name} is missing on one path only"
        assert np.abs(a[~np.isnan(a)] - b[~np.isnan(b)]).max(initial=0.0) <= 1e-9
    if not feature.categorical:
        assert batch.notna().any(), f"{feature.name} is never defined on the sample: the test proves nothing"


def test_a_feature_declared_but_not_written_fails_both_implementations(
    sample: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fraud_core.features import definitions
    from fraud_core.online.features import features_one, history_from_frame

    frame = sample.head(50)
    row = {c: frame.iloc[-1][c] for c in frame.columns}
    row["event_time"] = pd.Timestamp(row["event_time"]).to_pydatetime()
    row["dob"] = pd.Timestamp(row["dob"]).to_pydatetime()
    history = history_from_frame(frame, row)
    assert set(features_one(row, history, label_delay_days=DELAY_DAYS)) == set(FEATURE_COLUMNS)
    monkeypatch.setattr(definitions, "FEATURE_COLUMNS", (*FEATURE_COLUMNS, "card_merchant_count_7d"))
    with pytest.raises(ValueError, match=r"build_features does not compute.*missing \['card_merchant_count_7d'\]"):
        build_features(frame, label_delay_days=DELAY_DAYS)
    with pytest.raises(ValueError, match=r"features_one does not compute.*missing \['card_merchant_count_7d'\]"):
        features_one(row, history, label_delay_days=DELAY_DAYS)
