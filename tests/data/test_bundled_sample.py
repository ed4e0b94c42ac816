"""Expectations on the bundled sample that the demo and the tests rely on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fraud_core.data import load_canonical, read_raw
from fraud_core.schema import CATEGORIES, RAW_COLUMNS

pytestmark = pytest.mark.data

SAMPLE = Path(__file__).parents[2] / "data" / "sample" / "fraud_sample.parquet"
SPLIT = pd.Timestamp("2020-06-21 12:14:00")


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return read_raw(SAMPLE)


def test_sample_is_small_and_in_the_kaggle_schema(raw: pd.DataFrame) -> None:
    assert SAMPLE.stat().st_size < 5_000_000
    assert list(raw.columns) == list(RAW_COLUMNS)
    assert raw["trans_num"].is_unique
    assert set(raw["category"]) == set(CATEGORIES)


def test_every_row_is_valid() -> None:
    frame, rejected = load_canonical(SAMPLE, token_key="data-test-key-0123456789")
    assert rejected == []
    assert frame["event_time"].is_monotonic_increasing


def test_whole_card_histories_over_both_periods(raw: pd.DataFrame) -> None:
    times = pd.to_datetime(raw["trans_date_trans_time"])
    per_card = raw.assign(t=times).groupby("cc_num")["t"].agg(["min", "max", "count"])
    assert len(per_card) >= 30
    # whole histories: most cards are seen from the first weeks of the data and run on into the later
    # period (a few live only a couple of days, as in the full files), so the demo has a past to read
    assert (per_card["min"] < pd.Timestamp("2019-03-01")).mean() >= 0.75
    assert (per_card["max"] > SPLIT).mean() >= 0.8
    assert per_card["count"].median() >= 500


def test_fraud_in_both_periods_at_a_realistic_rate(raw: pd.DataFrame) -> None:
    times = pd.to_datetime(raw["trans_date_trans_time"])
    before, after = raw[times < SPLIT], raw[times >= SPLIT]
    for part in (before, after):
        assert part["is_fraud"].sum() >= 50
        assert 0.002 < part["is_fraud"].mean() < 0.02
    fraud, legit = raw[raw["is_fraud"] == 1], raw[raw["is_fraud"] == 0]
    assert fraud["amt"].mean() > 4 * legit["amt"].mean()
