"""Point-in-time features against hand-computed values, leakage, label delay and ties."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_core.features import FEATURE_COLUMNS, FEATURE_DESCRIPTIONS, build_features, label_events_from_frame
from fraud_core.features.definitions import LABEL_RATE_PRIOR_COUNT, MAX_AMOUNT_WINDOW

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "fraud_sample.parquet"

KM_PER_DEGREE = 6371.0088 * math.pi / 180.0


def _tx(trans_num: str, card: str, when: str, amount: float, category: str = "grocery_pos", **extra: object) -> dict:
    row: dict[str, object] = {
        "trans_num": trans_num,
        "card_id": card,
        "event_time": pd.Timestamp(when),
        "amount": amount,
        "category": category,
        "merchant": extra.pop("merchant", "m1"),
        "merch_lat": 0.0,
        "merch_long": 1.0,
        "lat": 0.0,
        "long": 0.0,
        "dob": pd.Timestamp("1990-01-01"),
        "is_fraud": 0,
    }
    row.update(extra)
    return row


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["event_time"] = frame["event_time"].astype("datetime64[us]")
    frame["dob"] = frame["dob"].astype("datetime64[us]")
    return frame


@pytest.fixture(scope="module")
def card_a() -> pd.DataFrame:
    """One card's six transactions (and another card's, which must never count)."""
    return _frame(
        [
            _tx("a1", "A", "2020-01-01 00:00:00", 10.0),
            _tx("a2", "A", "2020-01-01 00:30:00", 20.0, merch_long=2.0),
            _tx("b1", "B", "2020-01-01 00:45:00", 999.0),
            _tx("a3", "A", "2020-01-01 02:00:00", 30.0, "shopping_net"),
            _tx("a4", "A", "2020-01-02 01:00:00", 40.0),
            _tx("a5", "A", "2020-01-09 00:00:00", 100.0),
            _tx("a6", "A", "2020-01-09 01:00:00", 50.0),
        ]
    )


@pytest.fixture(scope="module")
def sample_canonical() -> pd.DataFrame:
    from fraud_core.data import load_canonical

    frame, rejected = load_canonical(SAMPLE, token_key="unit-test-token-key")
    assert not rejected
    return frame


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


# For each row of card A: the amounts of the card's transactions in [t - w, t), worked out by hand.
WINDOW_MEMBERS: dict[str, dict[str, list[float]]] = {
    "1h": {"a1": [], "a2": [10], "a3": [], "a4": [], "a5": [], "a6": [100]},  # a6: a5 sits on t - 1 h
    "24h": {"a1": [], "a2": [10], "a3": [10, 20], "a4": [30], "a5": [], "a6": [100]},
    "7d": {"a1": [], "a2": [10], "a3": [10, 20], "a4": [10, 20, 30], "a5": [40], "a6": [40, 100]},
    "30d": {
        "a1": [],
        "a2": [10],
        "a3": [10, 20],
        "a4": [10, 20, 30],
        "a5": [10, 20, 30, 40],
        "a6": [10, 20, 30, 40, 100],
    },
}


@pytest.mark.parametrize("window", list(WINDOW_MEMBERS))
def test_window_features_match_hand_computed_values(card_a: pd.DataFrame, window: str) -> None:
    features = build_features(card_a, label_delay_days=7).set_axis(card_a["trans_num"])
    for trans_num, members in WINDOW_MEMBERS[window].items():
        row = features.loc[trans_num]
        assert row[f"card_count_{window}"] == len(members), trans_num
        assert row[f"card_amount_sum_{window}"] == pytest.approx(sum(members), abs=1e-9), trans_num
        expected_mean = sum(members) / len(members) if members else math.nan
        assert row[f"card_amount_mean_{window}"] == pytest.approx(expected_mean, abs=1e-9, nan_ok=True), trans_num
        assert row[f"card_amount_std_{window}"] == pytest.approx(_std(members), abs=1e-9, nan_ok=True), trans_num
        if window == MAX_AMOUNT_WINDOW:
            expected_max = max(members) if members else math.nan
            assert row[f"card_amount_max_{window}"] == pytest.approx(expected_max, nan_ok=True), trans_num


@pytest.mark.parametrize("random_state", range(3))
def test_range_max_equals_a_loop(random_state: int) -> None:
    """The sparse-table maximum behind card_amount_max_*: every range length, empty ones included."""
    from fraud_core.features.build import _range_max

    rng = np.random.default_rng(random_state)
    n = 2_000
    values = rng.lognormal(3.0, 1.0, size=n).round(2)
    lo = rng.integers(0, n + 1, size=n)
    hi = np.minimum(lo + rng.integers(0, 130, size=n), n)
    expected = np.array([values[a:b].max() if b > a else np.nan for a, b in zip(lo, hi, strict=True)])
    np.testing.assert_array_equal(_range_max(values, lo, hi), expected)
    assert np.isnan(_range_max(values, np.array([3]), np.array([3]))).all()


def test_std_values_spelled_out(card_a: pd.DataFrame) -> None:
    features = build_features(card_a, label_delay_days=7).set_axis(card_a["trans_num"])
    assert features.loc["a3", "card_amount_std_24h"] == pytest.approx(math.sqrt(50.0), abs=1e-9)
    assert features.loc["a6", "card_amount_std_7d"] == pytest.approx(math.sqrt(1800.0), abs=1e-9)
    # a6, 30 days: mean 40, squared deviations 900 + 400 + 100 + 0 + 3600 = 5000, / 4
    assert features.loc["a6", "card_amount_std_30d"] == pytest.approx(math.sqrt(1250.0), abs=1e-9)


def test_relative_amount_and_previous_transaction(card_a: pd.DataFrame) -> None:
    features = build_features(card_a, label_delay_days=7).set_axis(card_a["trans_num"])
    assert features.loc["a6", "amount_ratio_30d"] == pytest.approx(50.0 / 40.0, abs=1e-12)
    assert features.loc["a6", "amount_zscore_30d"] == pytest.approx(10.0 / math.sqrt(1250.0), abs=1e-12)
    assert math.isnan(features.loc["a1", "amount_ratio_30d"])
    assert math.isnan(features.loc["a2", "amount_zscore_30d"])  # one earlier amount: no spread

    secs = features["secs_since_prev"]
    assert math.isnan(secs["a1"])
    assert secs["a2"] == 1800.0
    assert secs["a3"] == 5400.0
    assert secs["a4"] == 23 * 3600.0
    assert secs["a5"] == 7 * 86400.0 - 3600.0
    assert secs["a6"] == 3600.0
    # a2's merchant is 1 degree of longitude (on the equator) east of a1's and a3's.
    assert features.loc["a2", "prev_merchant_km"] == pytest.approx(KM_PER_DEGREE, rel=1e-9)
    assert features.loc["a2", "prev_speed_kmh"] == pytest.approx(KM_PER_DEGREE / 0.5, rel=1e-9)
    assert features.loc["a3", "prev_merchant_km"] == pytest.approx(KM_PER_DEGREE, rel=1e-9)
    assert features.loc["a4", "prev_merchant_km"] == pytest.approx(0.0, abs=1e-9)
    assert features.loc["a1", "home_merchant_km"] == pytest.approx(KM_PER_DEGREE, rel=1e-9)
    assert features.loc["a2", "home_merchant_km"] == pytest.approx(2 * KM_PER_DEGREE, rel=1e-9)


def test_calendar_age_and_new_category(card_a: pd.DataFrame) -> None:
    features = build_features(card_a, label_delay_days=7).set_axis(card_a["trans_num"])
    assert features.loc["a1", "hour"] == 0 and features.loc["a3", "hour"] == 2
    assert features.loc["a1", "weekday"] == 2  # 2020-01-01 was a Wednesday
    assert features.loc["a5", "weekday"] == 3
    assert features.loc["a3", "is_night"] == 1.0
    midday = build_features(_frame([_tx("x", "X", "2020-01-01 12:00:00", 5.0)]), label_delay_days=7)
    assert midday["is_night"].iloc[0] == 0.0 and midday["hour"].iloc[0] == 12
    # Age at the transaction's date, not today's: 10,957 days after 1990-01-01.
    assert features.loc["a1", "age_years"] == pytest.approx(10957 / 365.25, abs=1e-12)
    assert features.loc["a6", "age_years"] == pytest.approx(10965 / 365.25, abs=1e-12)
    assert features["is_new_category"].to_dict() == {
        "a1": 1.0,
        "a2": 0.0,
        "b1": 1.0,
        "a3": 1.0,
        "a4": 0.0,
        "a5": 0.0,
        "a6": 0.0,
    }
    assert features.loc["a1", "category"] == "grocery_pos"


def test_other_cards_never_count(card_a: pd.DataFrame) -> None:
    features = build_features(card_a, label_delay_days=7).set_axis(card_a["trans_num"])
    b1 = features.loc["b1"]
    assert b1["card_count_30d"] == 0 and math.isnan(b1["secs_since_prev"])
    # b1 (999.00) sits between a2 and a3 in time but never enters card A's windows.
    assert features.loc["a3", "card_amount_sum_1h"] == 0.0


def test_output_follows_input_order_and_index(card_a: pd.DataFrame) -> None:
    shuffled = card_a.sample(frac=1.0, random_state=3)
    shuffled.index = shuffled.index + 100
    reference = build_features(card_a, label_delay_days=7).set_axis(card_a["trans_num"])
    features = build_features(shuffled, label_delay_days=7)
    assert list(features.index) == list(shuffled.index)
    assert list(features.columns) == list(FEATURE_COLUMNS)
    pd.testing.assert_frame_equal(features.set_axis(shuffled["trans_num"]), reference.loc[shuffled["trans_num"]])
    assert set(FEATURE_DESCRIPTIONS) == set(FEATURE_COLUMNS)


def test_adding_later_transactions_never_changes_earlier_features(card_a: pd.DataFrame) -> None:
    before = build_features(card_a, label_events_from_frame(card_a), label_delay_days=7)
    later = _frame(
        [
            _tx("z1", "A", "2020-01-09 01:00:01", 5000.0, "travel", is_fraud=1),
            _tx("z2", "A", "2020-02-01 00:00:00", 7.0, is_fraud=1),
            _tx("z3", "B", "2020-01-09 01:00:01", 1.0, is_fraud=1),
        ]
    )
    extended = pd.concat([card_a, later], ignore_index=True)
    after = build_features(extended, label_events_from_frame(extended), label_delay_days=7)
    pd.testing.assert_frame_equal(after.iloc[: len(card_a)], before)


def test_leakage_on_real_histories(sample_canonical: pd.DataFrame) -> None:
    """Cutting the sample at a date changes no feature of the rows before the cut."""
    frame = sample_canonical
    full = build_features(frame, label_events_from_frame(frame), label_delay_days=7)
    cut = pd.Timestamp("2019-09-15 13:37:00")
    early = frame[frame["event_time"] < cut]
    partial = build_features(early, label_events_from_frame(early), label_delay_days=7)
    pd.testing.assert_frame_equal(partial, full.loc[early.index])


def test_current_transaction_never_counts(card_a: pd.DataFrame) -> None:
    """Doubling a6's amount changes none of a6's history features."""
    changed = card_a.copy()
    changed.loc[changed["trans_num"] == "a6", "amount"] = 100_000.0
    base = build_features(card_a, label_delay_days=7).set_axis(card_a["trans_num"]).loc["a6"]
    bumped = build_features(changed, label_delay_days=7).set_axis(changed["trans_num"]).loc["a6"]
    history_columns = [c for c in FEATURE_COLUMNS if c.startswith("card_")]
    pd.testing.assert_series_equal(base[history_columns], bumped[history_columns])
    assert bumped["amount"] == 100_000.0


def test_label_features_respect_the_delay() -> None:
    """A label counts only once its transaction is at least `delay` old."""
    fraud_at = pd.Timestamp("2020-03-01 10:00:00")
    rows = [_tx(f"old{i}", "L", "2020-01-01 00:00:00", 10.0, merchant="m1") for i in range(3)]
    rows += [
        _tx("old_f", "L", "2020-01-02 00:00:00", 10.0, merchant="m2", is_fraud=1),
        _tx("fraud", "F", str(fraud_at), 500.0, merchant="m1", is_fraud=1),
        _tx("just_before", "Q", str(fraud_at + pd.Timedelta(days=7) - pd.Timedelta(seconds=1)), 9.0, merchant="m1"),
        _tx("on_delay", "Q", str(fraud_at + pd.Timedelta(days=7)), 9.0, merchant="m1"),
        _tx("other_cat", "Q", str(fraud_at + pd.Timedelta(days=8)), 9.0, "travel", merchant="m3"),
    ]
    frame = _frame(rows)
    features = build_features(frame, label_events_from_frame(frame), label_delay_days=7).set_axis(frame["trans_num"])
    m = LABEL_RATE_PRIOR_COUNT

    def rates(n_all: int, f_all: int, n_cat: int, f_cat: int, n_mer: int, f_mer: int) -> tuple[float, float]:
        overall = f_all / n_all
        category = (f_cat + m * overall) / (n_cat + m)
        return category, (f_mer + m * category) / (n_mer + m)

    # Before the fraud is 7 days old: 4 labels (1 fraud, at m2), all in grocery_pos; m1 has 3, clean.
    cat, mer = rates(4, 1, 4, 1, 3, 0)
    assert features.loc["just_before", "category_fraud_rate"] == pytest.approx(cat, abs=1e-12)
    assert features.loc["just_before", "merchant_fraud_rate"] == pytest.approx(mer, abs=1e-12)
    # Exactly 7 days later the fraud counts (and the transactions in between, younger, do not).
    cat, mer = rates(5, 2, 5, 2, 4, 1)
    assert features.loc["on_delay", "category_fraud_rate"] == pytest.approx(cat, abs=1e-12)
    assert features.loc["on_delay", "merchant_fraud_rate"] == pytest.approx(mer, abs=1e-12)
    # A category and merchant with no label: pulled entirely to the overall rate.
    overall = 2 / 5
    assert features.loc["other_cat", "category_fraud_rate"] == pytest.approx(overall, abs=1e-12)
    assert features.loc["other_cat", "merchant_fraud_rate"] == pytest.approx(overall, abs=1e-12)
    # Nothing old enough: missing, not zero.
    assert math.isnan(features.loc["old0", "category_fraud_rate"])

    shorter = build_features(frame, label_events_from_frame(frame), label_delay_days=1).set_axis(frame["trans_num"])
    assert shorter.loc["just_before", "merchant_fraud_rate"] > features.loc["just_before", "merchant_fraud_rate"]


def test_unlabelled_transactions_do_not_count_as_legitimate() -> None:
    frame = _frame(
        [
            _tx("f", "A", "2020-01-01", 10.0, is_fraud=1),
            _tx("u", "A", "2020-01-02", 10.0, is_fraud=None),
            _tx("q", "A", "2020-02-01", 10.0),
        ]
    )
    frame["is_fraud"] = frame["is_fraud"].astype("Int8")
    features = build_features(frame, label_events_from_frame(frame), label_delay_days=7)
    m = LABEL_RATE_PRIOR_COUNT
    # Only "f" is labelled and old enough: overall rate 1/1, category rate (1 + m * 1) / (1 + m) = 1.
    assert features["category_fraud_rate"].iloc[2] == pytest.approx(1.0, abs=1e-12)
    assert features["merchant_fraud_rate"].iloc[2] == pytest.approx((1 + m) / (1 + m), abs=1e-12)


def test_ties_in_event_time() -> None:
    """Same-second transactions never see each other; 'previous' is the largest trans_num."""
    rows = [
        _tx("t-b", "T", "2020-01-01 10:00:00", 10.0, merch_long=1.0),
        _tx("t-a", "T", "2020-01-01 10:00:00", 20.0, merch_long=3.0),
        _tx("t-c", "T", "2020-01-01 10:00:00", 40.0, merch_long=5.0),
        _tx("t-z", "T", "2020-01-01 10:10:00", 5.0, merch_long=1.0),
    ]
    frame = _frame(rows)
    features = build_features(frame, label_delay_days=7).set_axis(frame["trans_num"])
    for tied in ("t-a", "t-b", "t-c"):
        assert features.loc[tied, "card_count_1h"] == 0
        assert math.isnan(features.loc[tied, "secs_since_prev"])
        assert features.loc[tied, "is_new_category"] == 1.0
    later = features.loc["t-z"]
    assert later["card_count_1h"] == 3 and later["card_amount_sum_1h"] == pytest.approx(70.0)
    assert later["card_amount_max_24h"] == 40.0
    # The previous transaction is t-c (largest trans_num of the tied three): 4 degrees west.
    assert later["prev_merchant_km"] == pytest.approx(4 * KM_PER_DEGREE, rel=1e-9)
    assert later["secs_since_prev"] == 600.0
    for random_state in range(4):
        shuffled = frame.sample(frac=1.0, random_state=random_state)
        again = build_features(shuffled, label_delay_days=7).set_axis(shuffled["trans_num"])
        pd.testing.assert_frame_equal(again.loc[features.index], features)


def test_sub_second_times_compare_at_whole_seconds() -> None:
    frame = _frame(
        [
            _tx("s1", "S", "2020-01-01 10:00:00.100", 10.0),
            _tx("s2", "S", "2020-01-01 10:00:00.900", 20.0),
            _tx("s3", "S", "2020-01-01 10:00:01.000", 30.0),
        ]
    )
    features = build_features(frame, label_delay_days=7).set_axis(frame["trans_num"])
    assert features.loc["s2", "card_count_1h"] == 0
    assert features.loc["s3", "card_count_1h"] == 2
    assert features.loc["s3", "secs_since_prev"] == pytest.approx(0.1)


def test_missing_columns_are_refused(card_a: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="missing: amount"):
        build_features(card_a.drop(columns="amount"), label_delay_days=7)
